fn main() {
    openline::placeholder();
}
