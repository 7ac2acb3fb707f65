//! The shipped manifests stay valid: the device plugin ConfigMap in `deploy/base` holds a config
//! this plugin accepts, and every YAML document under `deploy/` parses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;
use sriov_device_plugin::config::Config;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

#[test]
fn configmap_config_is_accepted_by_the_plugin() {
    let path = deploy_dir().join("base/device-plugin-config.yaml");
    let doc = documents(&path).remove(0);
    let json = doc["data"]["config.json"].as_str().expect("data.config.json");
    let config = Config::parse(json.as_bytes(), &path, "intel.com").unwrap();
    let names: Vec<String> = config.pools.iter().map(|p| p.resource_name()).collect();
    assert_eq!(
        names,
        [
            "intel.com/intel_sriov_netdevice",
            "intel.com/intel_sriov_dpdk",
            "intel.com/mlnx_sriov_rdma"
        ]
    );
}

#[test]
fn every_manifest_parses_and_nad_configs_are_json() {
    let mut seen = 0;
    for dir in ["base", "examples"] {
        for entry in std::fs::read_dir(deploy_dir().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            for doc in documents(&path) {
                seen += 1;
                assert!(
                    doc.get("apiVersion").is_some() || doc.get("resources").is_some(),
                    "{}",
                    path.display()
                );
                if doc["kind"].as_str() == Some("NetworkAttachmentDefinition") {
                    let cfg = doc["spec"]["config"].as_str().unwrap();
                    let v: serde_json::Value = serde_json::from_str(cfg)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(v["cniVersion"].is_string(), "{}", path.display());
                }
            }
        }
    }
    assert!(seen >= 8, "{seen} documents");
}
