#!/bin/sh
# Regenerates every shipped prompt in this directory: speech with espeak-ng, the beep and the hold
# music with sox. All output is 8 kHz mono 16-bit PCM WAV. Same tools, same files: sox runs with -R
# (fixed random seed) and -D (no dither), so a rerun gives identical bytes with the same versions.
#
#   apt-get install espeak-ng sox     # made with espeak-ng 1.51 and SoX 14.4.2 (Debian 12)
#   sounds/make.sh                    # VOICE=en-gb SPEED=140 sounds/make.sh for another voice
set -eu
cd "$(dirname "$0")"

VOICE=${VOICE:-en-us}
SPEED=${SPEED:-150}   # words per minute; espeak-ng's default of 175 is quick for a phone line
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say FILE LEAD TAIL TEXT: speak TEXT, trim the silence espeak-ng leaves around it, resample to 8 kHz
# (sox's very-high-quality linear-phase filter), peak-normalise to -3 dBFS (the level
# media::tts::TARGET_PEAK gives synthesized speech), then pad LEAD and TAIL seconds of silence.
say() {
    file=$1 lead=$2 tail=$3
    shift 3
    espeak-ng -v "$VOICE" -s "$SPEED" -w "$tmp/say.wav" -- "$*"
    sox -D -R "$tmp/say.wav" -r 8000 -c 1 -b 16 -e signed-integer "$file" \
        silence 1 0.005 0.1% reverse silence 1 0.005 0.1% reverse \
        rate -v 8000 norm -3 pad "$lead" "$tail"
}

# Whole prompts: a tenth of a second before, a third after.
say welcome.wav 0.1 0.3 "Thank you for calling."
say main-menu.wav 0.1 0.3 "For sales, press 1. For support, press 2. To speak to an operator, press 0. To hear this again, press star."
say invalid.wav 0.1 0.3 "Sorry, that is not a valid choice."
say closed.wav 0.1 0.3 "Our office is closed now. Please leave a message after the tone. Press the pound key when you are done."
say please-hold.wav 0.1 0.3 "Please hold, we are connecting your call."
say recording-notice.wav 0.1 0.3 "This call may be recorded for quality purposes."
say rating.wav 0.1 0.3 "Please rate this call from one to five, using your keypad."
say thanks.wav 0.1 0.3 "Thank you. Goodbye."
say goodbye.wav 0.1 0.3 "Goodbye."
say no-agents.wav 0.1 0.3 "All our operators are busy. Please leave a message after the tone."
say voicemail-saved.wav 0.1 0.3 "Your message has been saved. Goodbye."

# Pieces joined at run time ("you are number" + "twenty" + "three" + "in the queue"): tight edges,
# a short gap after each so the joins sound like one sentence.
say you-are-number.wav 0.1 0.08 "You are number"
say in-the-queue.wav 0 0.3 "in the queue."
mkdir -p digits
n=0
for word in zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen \
    fifteen sixteen seventeen eighteen nineteen twenty; do
    say "digits/$n.wav" 0 0.08 "$word"
    n=$((n + 1))
done
n=30
for word in thirty forty fifty sixty seventy eighty ninety; do
    say "digits/$n.wav" 0 0.08 "$word"
    n=$((n + 10))
done

# The voicemail beep: 1 kHz for 400 ms at -6 dBFS, 10 ms fades so it does not click.
sox -D -R -n -r 8000 -c 1 -b 16 -e signed-integer beep.wav \
    synth 0.4 sine 1000 fade q 0.01 0.4 0.01 vol -6dB

# Hold music, 20 s and loopable: C - Am - F - G, five seconds each, a plucked arpeggio in quarter
# notes (96 bpm) over a soft sine chord (kept above 200 Hz, which phones pass), low-passed at 2 kHz
# to soften the plucks, at -13 dBFS peak (a little under the speech). G leads back to C, and the
# file starts and ends near silence. Pitches are semitones from A4 (sox's %n): C4 = %-9, A3 = %-12.
note=0.625
chord() { # chord NAME PAD1 PAD2 PAD3 ARPEGGIO...
    name=$1
    sox -D -R -r 8000 -c 3 -n -c 1 -b 16 "$tmp/pad-$name.wav" \
        synth 5 sine "$2" sine "$3" sine "$4" remix - fade q 0.4 5 0.4 vol 0.25
    shift 4
    i=0
    for pitch in "$@"; do
        sox -D -R -n -r 8000 -c 1 -b 16 "$tmp/arp-$name-$i.wav" \
            synth "$note" pluck "$pitch" fade q 0.005 "$note" 0.15
        i=$((i + 1))
    done
    sox -D -R $(for j in $(seq 0 $((i - 1))); do echo "$tmp/arp-$name-$j.wav"; done) "$tmp/arp-$name.wav"
    sox -D -R -m "$tmp/arp-$name.wav" "$tmp/pad-$name.wav" "$tmp/chord-$name.wav"
}
chord c %-9 %-5 %-2 %-9 %-5 %-2 %3 %-2 %-5 %-9 %-2
chord am %-12 %-9 %-5 %-12 %-9 %-5 %0 %-5 %-9 %-12 %-5
chord f %-16 %-12 %-9 %-16 %-12 %-9 %-4 %-9 %-12 %-16 %-9
chord g %-14 %-10 %-7 %-14 %-10 %-7 %-2 %-7 %-10 %-14 %-7
sox -D -R "$tmp/chord-c.wav" "$tmp/chord-am.wav" "$tmp/chord-f.wav" "$tmp/chord-g.wav" \
    -b 16 -e signed-integer hold.wav lowpass 2000 norm -13 fade q 0.02 20 0.05

echo "made $(find . -name '*.wav' | wc -l) prompts:"
du -ch $(find . -name '*.wav') | tail -1
