//! `cargo bench -p kafka-conn-bench --bench e2e`: the end-to-end benchmark,
//! run from `just bench` (which starts the brokers). `cargo test
//! --all-targets` builds this without `--bench`: then it does nothing.
//!
//! Without `--workloads`, it runs the default workloads (Metadata and
//! ApiVersions at concurrency 1 and 64 on both brokers), then the 1 MiB
//! Produce workload at concurrency 1 and 16 on the mock cluster (tansu
//! would store every megabyte).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench" || a == "--child") {
        println!("e2e: not run without --bench (cargo bench runs it)");
        return;
    }
    let mut status = kafka_conn_bench::main(args.clone());
    if !args
        .iter()
        .any(|a| a.starts_with("--workload") || a == "--child")
    {
        let mut produce = args;
        produce.extend(
            [
                "--workloads",
                "produce-1mib",
                "--concurrency",
                "1,16",
                "--targets",
                "mock",
            ]
            .map(str::to_owned),
        );
        status = status.max(kafka_conn_bench::main(produce));
    }
    std::process::exit(status);
}
