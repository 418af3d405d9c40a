//! The container supervisor as a binary of its own: `onebox-container-shim <instance dir>`.
//! The onebox binary runs the same code as `onebox container-shim <instance dir>`.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: onebox-container-shim <instance dir>");
        std::process::exit(2);
    };
    std::process::exit(container::shim::main(std::path::Path::new(&dir)));
}
