//! Benchmark: SecureConnect's unary writes and real-time fan-out, side by side with
//! Centrifugo v6 (its unidirectional gRPC stream and gRPC server API), measured from the
//! server's own CPU and memory counters (`/proc/PID`).
//!
//! ```sh
//! secureconnect-bench --server-pid PID unary
//! secureconnect-bench --server-pid PID fanout --subscribers 100
//! secureconnect-bench --target centrifugo --endpoint http://127.0.0.1:11000 \
//!     --centrifugo-api http://127.0.0.1:10000 --server-pid PID fanout --subscribers 100
//! secureconnect-bench --server-pid PID idle --streams 10000
//! ```
//! Each run ends with one `result key=value …` line; `deploy/bench/compare.sh` runs both
//! servers and prints the ratios. Pin the server and this process to different cores
//! (`taskset`) so neither measures the other.

mod centrifugo;
mod fanout;
mod idle;
mod report;
mod secureconnect;
mod server_stats;
mod streams;
mod unary;

use clap::{Parser, Subcommand, ValueEnum};

use secureconnect::BoxError;
use server_stats::ServerStats;

#[derive(Parser, Debug)]
#[command(about = "SecureConnect against Centrifugo: unary writes, fan-out, idle streams")]
struct Args {
    /// The server under test.
    #[arg(long, value_enum, default_value_t = System::Secureconnect)]
    target: System,
    /// Its gRPC address: SecureConnect's listen address, or Centrifugo's `uni_grpc` port.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// Centrifugo's gRPC server API (publishing), e.g. `http://127.0.0.1:10000`.
    #[arg(long, default_value = "http://127.0.0.1:10000")]
    centrifugo_api: String,
    /// Centrifugo's `grpc_api.key`.
    #[arg(long, default_value = "bench-api-key")]
    centrifugo_api_key: String,
    /// Centrifugo's `client.token.hmac_secret_key` (connection tokens are signed with it).
    #[arg(long, default_value = "bench-token-secret")]
    centrifugo_secret: String,
    /// The server's process id: its CPU time and memory are read from `/proc`.
    #[arg(long)]
    server_pid: u32,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    Secureconnect,
    Centrifugo,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// `SendMessage` into a 6-member group, `ListMessages` (50) and
    /// `grpc.health.v1.Health/Check`, each in turn for `--duration` seconds on the same
    /// connections at the same concurrency (SecureConnect only).
    Unary(unary::Options),
    /// One publisher, `--subscribers` streams of one conversation (channel), each on its
    /// own connection.
    Fanout(fanout::Options),
    /// `--streams` idle streams, each on its own connection: memory per stream.
    Idle(idle::Options),
}

/// What a scenario drives.
pub enum Target {
    Secureconnect {
        endpoint: String,
    },
    Centrifugo {
        endpoint: String,
        api: String,
        api_key: String,
        secret: String,
    },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Secureconnect { .. } => "secureconnect",
            Target::Centrifugo { .. } => "centrifugo",
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let server = ServerStats::new(args.server_pid)?;
    let target = match args.target {
        System::Secureconnect => Target::Secureconnect {
            endpoint: args.endpoint,
        },
        System::Centrifugo => Target::Centrifugo {
            endpoint: args.endpoint,
            api: args.centrifugo_api,
            api_key: args.centrifugo_api_key,
            secret: args.centrifugo_secret,
        },
    };
    let result = match args.scenario {
        Scenario::Unary(options) => unary::run(&target, server, options).await?,
        Scenario::Fanout(options) => fanout::run(&target, server, options).await?,
        Scenario::Idle(options) => idle::run(&target, server, options).await?,
    };
    println!("{result}");
    Ok(())
}
