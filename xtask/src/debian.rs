//! Debian packages by name, for any architecture, cached under `target/debian/`.
//!
//! Guest images (kernels, busybox) come from Debian's archive at run time and are never
//! committed. A [`Distro`] names a suite and an architecture (`bookworm`/`arm64`,
//! `trixie`/`riscv64`, `bookworm`/`amd64`); [`Distro::package`] downloads one package with
//! `apt-get download` under a private apt configuration and unpacks it (or just the paths
//! asked for) with `dpkg-deb`.
//! The machine's own apt state (its architectures, lists, dpkg database) is not touched:
//! the configuration points apt at its own source list, lists and cache below
//! `target/debian/<suite>-<arch>/`, for the foreign architecture only.
//!
//! A package unpacked once is reused without asking the network (its directory holds a
//! `.complete` marker naming what was unpacked, written last); the index is fetched at most
//! once per run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::cmd;

/// The archive every suite here comes from, signed by the machine's Debian keyring.
const MIRROR: &str = "http://deb.debian.org/debian";
const SECURITY: &str = "http://deb.debian.org/debian-security";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A Debian suite for one architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distro {
    /// `bookworm`, `trixie`, ...
    pub suite: &'static str,
    /// Debian's name of the architecture: `arm64`, `riscv64`, `amd64`.
    pub arch: &'static str,
    /// Whether `<suite>-security` is searched too (newer kernels of a released suite).
    pub security: bool,
}

/// Index fetches done by this process, so a run updates each suite's index once.
static UPDATED: Mutex<Vec<Distro>> = Mutex::new(Vec::new());

impl Distro {
    /// Where this suite's apt state, downloads and unpacked packages live.
    pub fn dir(&self) -> PathBuf {
        crate::testbed::target_dir()
            .join("debian")
            .join(format!("{}-{}", self.suite, self.arch))
    }

    /// The one-line-per-source list apt reads instead of the machine's.
    pub fn sources_list(&self) -> String {
        let opts = format!("[arch={} signed-by={KEYRING}]", self.arch);
        let mut s = format!("deb {opts} {MIRROR} {} main\n", self.suite);
        if self.security {
            s += &format!("deb {opts} {SECURITY} {}-security main\n", self.suite);
        }
        s
    }

    /// The `-o` options that make apt use this suite's private state.
    fn apt_options(&self) -> Vec<String> {
        let d = self.dir();
        let p = |sub: &str| d.join(sub).display().to_string();
        [
            format!("Dir::Etc::SourceList={}", p("sources.list")),
            format!("Dir::Etc::SourceParts={}", p("sources.list.d")),
            format!("Dir::State::Lists={}", p("lists")),
            format!("Dir::Cache={}", p("cache")),
            format!("APT::Architectures::={}", self.arch),
            // Our own lists: no lock on the machine's.
            "Debug::NoLocking=1".to_string(),
            // Downloads go to our directory, which apt's sandbox user may not write.
            "APT::Sandbox::User=root".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn apt(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        let mut all = self.apt_options();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        cmd::output(tool, &all, None)
    }

    /// Fetches the suite's package index (once per run).
    fn update(&self) -> Result<(), String> {
        let mut done = UPDATED.lock().map_err(|_| "apt index lock poisoned")?;
        if done.contains(self) {
            return Ok(());
        }
        let d = self.dir();
        for sub in [
            "lists/partial",
            "cache/archives/partial",
            "sources.list.d",
            "debs",
        ] {
            std::fs::create_dir_all(d.join(sub))
                .map_err(|e| format!("creating {}: {e}", d.join(sub).display()))?;
        }
        std::fs::write(d.join("sources.list"), self.sources_list())
            .map_err(|e| format!("writing {}: {e}", d.join("sources.list").display()))?;
        eprintln!(
            "xtask: fetching the Debian {} index for {}",
            self.suite, self.arch
        );
        let started = Instant::now();
        let mut args = self.apt_options();
        args.extend(["-q".to_string(), "update".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cmd::run("apt-get", &args, &[])?;
        eprintln!(
            "xtask: index fetched in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        done.push(*self);
        Ok(())
    }

    /// The packages `name` depends on (first alternative of each), as this suite's index
    /// resolves them: `linux-image-arm64` → `linux-image-6.1.0-N-arm64`.
    pub fn depends(&self, name: &str) -> Result<Vec<String>, String> {
        self.update()?;
        let out = self.apt(
            "apt-cache",
            &[
                "depends",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
                &format!("{name}:{}", self.arch),
            ],
        )?;
        Ok(parse_depends(&out))
    }

    /// Downloads and unpacks package `name` of this suite and architecture; returns the
    /// directory it is unpacked in (its file system tree). With `only` non-empty, just those
    /// paths of the package (`boot`, `usr/bin/busybox`: a kernel package's modules are
    /// ten times its kernel). Cached: a package unpacked before (with the same `only`) is
    /// returned without network access.
    pub fn package(&self, name: &str, only: &[&str]) -> Result<PathBuf, String> {
        let root = self.dir().join("root").join(name);
        let marker = format!("{}\n", only.join(" "));
        let complete = root.join(".complete");
        if std::fs::read_to_string(&complete).is_ok_and(|m| m == marker) {
            return Ok(root);
        }
        self.update()?;
        let debs = self.dir().join("debs");
        let deb = match find_deb(&debs, name)? {
            Some(deb) => deb,
            None => {
                eprintln!("xtask: downloading {name}:{} ({})", self.arch, self.suite);
                let started = Instant::now();
                let mut args = self.apt_options();
                args.extend(["download".to_string(), format!("{name}:{}", self.arch)]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                cmd::run_in("apt-get", &args, &debs)?;
                let deb = find_deb(&debs, name)?
                    .ok_or_else(|| format!("apt-get download {name} left no .deb"))?;
                let size = std::fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
                eprintln!(
                    "xtask: {} ({:.1} MB) in {:.1} s",
                    deb.display(),
                    size as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
                deb
            }
        };
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .map_err(|e| format!("clearing {}: {e}", root.display()))?;
        }
        std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
        let (deb_s, root_s) = (deb.display().to_string(), root.display().to_string());
        if only.is_empty() {
            cmd::run("dpkg-deb", &["-x", &deb_s, &root_s], &[])?;
        } else {
            // The members of the package's data archive, as `dpkg-deb -x` would write them.
            let members: Vec<String> = only.iter().map(|p| format!("'./{p}'")).collect();
            let script = format!(
                "dpkg-deb --fsys-tarfile '{deb_s}' | tar -x -C '{root_s}' {}",
                members.join(" ")
            );
            cmd::run("sh", &["-c", &script], &[])?;
        }
        std::fs::write(&complete, marker)
            .map_err(|e| format!("marking {}: {e}", root.display()))?;
        Ok(root)
    }

    /// Unpacks (`only` those paths of) the dependency of metapackage `name` whose name
    /// starts with `prefix` (a `linux-image-<arch>` points at the current
    /// `linux-image-<version>-<arch>`); returns the dependency's tree (or `name`'s own when
    /// it has no such dependency).
    pub fn package_through(
        &self,
        name: &str,
        prefix: &str,
        only: &[&str],
    ) -> Result<PathBuf, String> {
        // A cached resolution keeps working offline.
        let link = self.dir().join("root").join(format!("{name}.resolved"));
        if let Ok(dep) = std::fs::read_to_string(&link) {
            let root = self.dir().join("root").join(dep.trim());
            let marker = format!("{}\n", only.join(" "));
            if std::fs::read_to_string(root.join(".complete")).is_ok_and(|m| m == marker) {
                return Ok(root);
            }
        }
        let dep = self
            .depends(name)?
            .into_iter()
            .find(|d| d.starts_with(prefix) && d != name);
        let Some(dep) = dep else {
            return self.package(name, only);
        };
        let root = self.package(&dep, only)?;
        std::fs::write(&link, &dep).map_err(|e| format!("writing {}: {e}", link.display()))?;
        Ok(root)
    }
}

/// The `.deb` of `name` in `dir`, if downloaded (`<name>_<version>_<arch>.deb`).
fn find_deb(dir: &Path, name: &str) -> Result<Option<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let prefix = format!("{name}_");
    Ok(entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
    }))
}

/// The dependencies in `apt-cache depends` output: `  Depends: pkg:arch` lines (an
/// alternative `|Depends:` counts; virtual packages `<...>` do not), without the
/// architecture suffix.
pub fn parse_depends(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches('|');
            l.strip_prefix("Depends: ")
        })
        .filter(|d| !d.starts_with('<'))
        .map(|d| d.split(':').next().unwrap_or(d).trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_are_read_without_architecture_and_virtual_packages() {
        let out = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-57-arm64:arm64\n  \
                   |Depends: foo:arm64\n  Depends: <virtual>\n";
        assert_eq!(parse_depends(out), ["linux-image-6.1.0-57-arm64", "foo"]);
    }

    #[test]
    fn the_source_list_names_the_architecture_and_the_keyring() {
        let d = Distro {
            suite: "bookworm",
            arch: "arm64",
            security: true,
        };
        let s = d.sources_list();
        assert_eq!(s.lines().count(), 2);
        assert!(s.contains("[arch=arm64 signed-by=/usr/share/keyrings/"));
        assert!(s.contains("debian-security bookworm-security main"));
        let t = Distro {
            suite: "trixie",
            arch: "riscv64",
            security: false,
        };
        assert_eq!(t.sources_list().lines().count(), 1);
        assert!(t.dir().ends_with("debian/trixie-riscv64"));
    }
}
