//! 4. Footprint: binary and image sizes.

use super::*;

impl Bench {
    // -----------------------------------------------------------------------
    // 4. Footprint: binaries and images.

    pub(crate) fn footprint(&mut self) -> Res<()> {
        let mut tsv = String::new();
        for name in ["sender", "receiver", "relay"] {
            let size = fs::metadata(self.musl.join(name)).map_err(|e| format!("{name}: {e}"))?;
            let _ = writeln!(tsv, "binary\t{name}\t{}", size.len());
        }
        if quiet(&mut cmd("podman --version")) {
            for name in ["sender", "receiver"] {
                // Already built ones (the Dockerfile's tag), else a temporary build.
                let format = "{{.Repository}}:{{.Tag}}";
                let listed = output(&mut cmd(&format!("podman images --format {format}")));
                let tag = format!("udp-headless/{name}:");
                let listed = listed.unwrap_or_default();
                let found = listed
                    .lines()
                    .find(|l| l.starts_with(&tag) || l.contains(&format!("/{tag}")));
                let image = match found {
                    Some(image) => image.to_string(),
                    None => {
                        let image =
                            format!("localhost/udpbench-{}/{name}:latest", std::process::id());
                        let build = format!(
                            "podman build -q --pull=never --layers=false --target {name} \
                             --build-arg BINARIES=host -t {image} ."
                        );
                        if output(cmd(&build).current_dir(&self.repo)).is_err() {
                            log(&format!(
                                "podman build of the {name} image failed (see tests/it/containers.rs)"
                            ));
                            continue;
                        }
                        self.images.push(image.clone());
                        image
                    }
                };
                let size = output(&mut cmd(&format!(
                    "podman image inspect --format {{{{.Size}}}} {image}"
                )))?;
                let _ = writeln!(tsv, "image\t{name}\t{}", size.trim());
            }
        }
        write(&self.results.join("footprint.tsv"), tsv)
    }
}

/// 4.: binary and image sizes; their targets go to `t`.
pub fn footprint_table(results: &Path, t: &mut String) -> String {
    let mut o = String::new();
    o += "### Footprint\n\n";
    let rows: Vec<(String, String, f64)> = read(results.join("footprint.tsv"))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.to_string(),
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    for (kind, name, size) in &rows {
        let _ = writeln!(
            o,
            "- {kind} `{name}`: {} bytes ({:.0} KiB)",
            commas(*size),
            size / 1024.0
        );
    }
    if !rows.iter().any(|r| r.0 == "image") {
        o += "- images: podman not available here (tests/it/containers.rs builds them)\n";
    }
    for (kind, name, size) in &rows {
        let _ = writeln!(
            t,
            "- {kind} `{name}` under 600 KB: {} bytes: {}",
            commas(*size),
            verdict(*size < 600_000.0)
        );
    }
    o
}
