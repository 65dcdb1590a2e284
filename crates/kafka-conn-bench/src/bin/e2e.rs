//! `e2e`: the end-to-end, side-by-side benchmark (see the crate docs).

fn main() {
    std::process::exit(kafka_conn_bench::main(std::env::args().skip(1).collect()));
}
