//! The `openline` command: `serve` runs the server (INTERFACE.md).

use clap::{Parser, Subcommand};
use openline::config::{ServeArgs, Settings};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "openline",
    version,
    about = "Open-source voice contact-center server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until SIGINT/SIGTERM.
    Serve(Serve),
    /// Validate IVR flow files; exit 1 with file:line:column: message on errors.
    CheckFlows(CheckFlows),
    /// Voice broadcasts on a running server.
    #[command(subcommand)]
    Broadcast(Broadcast),
}

#[derive(Subcommand)]
enum Broadcast {
    /// A campaign's progress: counts by outcome, calls in flight, ETA.
    Status(BroadcastStatus),
}

#[derive(clap::Args)]
struct BroadcastStatus {
    /// The campaign's id
    id: String,
    /// Follow it with a progress bar until it completes or is cancelled
    #[arg(long)]
    watch: bool,
    /// The server's HTTP address
    #[arg(long, env = "OPENLINE_API", default_value = "http://127.0.0.1:8080")]
    api: String,
    /// An admin's or manager's API token
    #[arg(long, env = "OPENLINE_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(clap::Args)]
struct CheckFlows {
    /// Flow files or directories [default: the flows directory]
    paths: Vec<PathBuf>,
    /// Flows directory used when no path is given
    #[arg(long, env = "OPENLINE_FLOWS", default_value = "ivr-flows")]
    flows: PathBuf,
    /// Where `play` files are looked up
    #[arg(long, env = "OPENLINE_SOUNDS", default_value = "sounds")]
    sounds: PathBuf,
}

#[derive(clap::Args)]
struct Serve {
    /// TOML file with operators, API tokens and tuning [default: openline.toml if present]
    #[arg(long, env = "OPENLINE_CONFIG")]
    config: Option<PathBuf>,
    /// SIP on UDP and TCP
    #[arg(long, env = "OPENLINE_SIP", default_value = "0.0.0.0:5060")]
    sip: SocketAddr,
    /// HTTP API and web page
    #[arg(long, env = "OPENLINE_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// sqlite://PATH or postgres://… [default: sqlite://DATA_DIR/openline.db]
    #[arg(long, env = "OPENLINE_DATABASE")]
    database: Option<String>,
    /// Recordings, voicemail, uploads, the node id
    #[arg(long, env = "OPENLINE_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// IVR flow files
    #[arg(long, env = "OPENLINE_FLOWS", default_value = "ivr-flows")]
    flows: PathBuf,
    /// Prompt files
    #[arg(long, env = "OPENLINE_SOUNDS", default_value = "sounds")]
    sounds: PathBuf,
    /// RTP port range, LOW-HIGH
    #[arg(long, env = "OPENLINE_RTP_PORTS", default_value = "20000-30000")]
    rtp_ports: String,
    /// Address written in SDP and Contact [default: the interface facing the peer]
    #[arg(long, env = "OPENLINE_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// Start the wall clock that calling windows and business hours are judged by at this
    /// RFC 3339 instant (tests and demos); it runs at real speed from there
    #[arg(long, env = "OPENLINE_CLOCK_START")]
    clock_start: Option<chrono::DateTime<chrono::Utc>>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::CheckFlows(args) => check_flows(args),
        Command::Broadcast(Broadcast::Status(args)) => broadcast_status(args),
    }
}

fn check_flows(args: CheckFlows) -> ExitCode {
    let paths = if args.paths.is_empty() {
        vec![args.flows]
    } else {
        args.paths
    };
    let tts = openline::media::tts::EspeakNg::detect().is_some();
    if !tts {
        eprintln!("openline: espeak-ng is not installed: `say` nodes are reported as errors");
    }
    if openline::runtime::flows::check(&paths, &args.sounds, tts) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn broadcast_status(args: BroadcastStatus) -> ExitCode {
    let target = openline::cli::ApiTarget {
        base: args.api,
        token: args.token,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    run_to_end(
        runtime,
        openline::cli::broadcast_status(&target, &args.id, args.watch),
    )
}

fn serve(args: Serve) -> ExitCode {
    let settings = match Settings::load(ServeArgs {
        config: args.config,
        sip: args.sip,
        http: args.http,
        database: args.database,
        data_dir: args.data_dir,
        flows: args.flows,
        sounds: args.sounds,
        rtp_ports: args.rtp_ports,
        public_ip: args.public_ip,
        clock_start: args.clock_start,
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openline: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    run_to_end(runtime, openline::runtime::serve(settings))
}

/// Runs `work` on `runtime` to its end: exit 0, or 1 with the error on stderr.
fn run_to_end<E: std::fmt::Display>(
    runtime: std::io::Result<tokio::runtime::Runtime>,
    work: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("openline: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openline: {e}");
            ExitCode::FAILURE
        }
    }
}
