//! The `wisp` CLI for end-to-end tests: the same entry point, and the same allocator, as the
//! shipped binary.

#[global_allocator]
static ALLOCATOR: wisp_plan::jinja::Metered = wisp_plan::jinja::Metered;

fn main() -> std::process::ExitCode {
    wisp::cli::main()
}
