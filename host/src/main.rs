//! The `host-chat` binary; see the library for everything it does.

fn main() -> std::process::ExitCode {
    host_chat::main()
}
