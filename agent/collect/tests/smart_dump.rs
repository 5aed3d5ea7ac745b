// temporary exploration, deleted before commit
use std::fs;
#[test]
fn dump() {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
    for dir in ["smartctl-text", "smartctl-json"] {
        let mut files: Vec<_> = fs::read_dir(format!("{base}/{dir}"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let text = String::from_utf8_lossy(&fs::read(&f).unwrap()).into_owned();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if dir == "smartctl-text" {
                match unity_collect::smart::parse_text(&text) {
                    Ok(r) => {
                        let v = unity_collect::smart::assess(&r, None, &Default::default());
                        println!(
                            "T {name}: {:?} model={:?} serial={:?} proto={:?} temp={:?} poh={:?} health={:?} attrs={} probs={:?} -> {:?} {:?}",
                            r.smartctl.as_ref().map(|s| s.version.clone()),
                            r.device.model,
                            r.device.serial,
                            r.device.protocol,
                            r.temperature_c,
                            r.power_on_hours,
                            r.health,
                            r.ata.as_ref().map_or(0, |a| a.attributes.len()),
                            r.problems,
                            v.status,
                            v.messages()
                        );
                    }
                    Err(e) => println!("T {name}: ERR {e}"),
                }
            } else {
                match unity_collect::smart::parse_json(&text) {
                    Ok((r, x)) => {
                        let v = unity_collect::smart::assess(&r, x, &Default::default());
                        println!(
                            "J {name}: {:?} model={:?} serial={:?} proto={:?} temp={:?} poh={:?} health={:?} attrs={} probs={:?} -> {:?} {:?}",
                            r.smartctl.as_ref().map(|s| s.version.clone()),
                            r.device.model,
                            r.device.serial,
                            r.device.protocol,
                            r.temperature_c,
                            r.power_on_hours,
                            r.health,
                            r.ata.as_ref().map_or(0, |a| a.attributes.len()),
                            r.problems,
                            v.status,
                            v.messages()
                        );
                    }
                    Err(e) => println!("J {name}: ERR {e}"),
                }
            }
        }
    }
}
