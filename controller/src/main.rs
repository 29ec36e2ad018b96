//! The `wisp` binary: see [`wisp::cli`].

/// Every render of a plan's templates is bounded in memory (see `wisp_plan::jinja::Metered`).
#[global_allocator]
static ALLOCATOR: wisp_plan::jinja::Metered = wisp_plan::jinja::Metered;

fn main() -> std::process::ExitCode {
    wisp::cli::main()
}
