//! Puts the git commit into `memlens -V` (MEMLENS_COMMIT; "unknown" outside a git checkout).
fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MEMLENS_COMMIT={commit}");
    // The files git moves on a commit or checkout of this checkout's branch, found by git
    // itself: in a worktree `.git` is a file, and a path that does not exist makes cargo
    // rerun this (and rebuild the crate) on every build.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(b) = branch {
        watch.push(git(&["rev-parse", "--git-path", &b]));
        watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    }
    for p in watch.into_iter().flatten() {
        if std::path::Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
