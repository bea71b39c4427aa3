//! The device keys' own tests (file keys; tests/tpm.rs covers the TPM).

use super::*;

#[test]
fn ecdsa_der_matches_what_ring_verifies() {
    // sign with ring in fixed form, re-encode, verify as ASN.1
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let kp = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    use ring::signature::KeyPair;
    for i in 0..64u8 {
        let msg = [i; 40];
        let sig = kp.sign(&rng, &msg).unwrap();
        let der = ecdsa_der(&sig.as_ref()[..32], &sig.as_ref()[32..]);
        let pk = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            kp.public_key().as_ref(),
        );
        assert!(pk.verify(&msg, &der).is_ok(), "round {i}");
    }
}

#[test]
fn private_files_refuse_links_and_wide_modes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    create_private_dir(&dir).unwrap();
    let f = dir.join("k");
    write_private(&f, b"secret").unwrap();
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(read_private(&f).unwrap().as_slice(), b"secret");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(read_private(&f).unwrap_err().to_string().contains("0600"));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&f, &link).unwrap();
    assert!(
        read_private(&link)
            .unwrap_err()
            .to_string()
            .contains("symbolic link")
    );
    assert!(
        destroy_private(&link)
            .unwrap_err()
            .to_string()
            .contains("symbolic link")
    );
    assert!(f.exists(), "the link's target was not touched");
    assert!(write_private(&link, b"x").is_err());
    assert_eq!(read_private(&f).unwrap().as_slice(), b"secret");
    assert!(destroy_private(&f).unwrap());
    assert!(!destroy_private(&f).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_keys_seal_and_verify_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let keys = DeviceKeys::create(&dir, true, tpm_boot::DEFAULT_PCRS).unwrap();
    std::fs::write(dir.join("a.toml"), "x = 1").unwrap();
    keys.seal_files(&["a.toml", "b.pem"]).unwrap();
    keys.verify_files(&["a.toml", "b.pem"]).unwrap();
    std::fs::write(dir.join("a.toml"), "x = 2").unwrap();
    let e = keys.verify_files(&["a.toml", "b.pem"]).unwrap_err();
    assert!(e.to_string().contains("a.toml"), "{e}");
    std::fs::write(dir.join("a.toml"), "x = 1").unwrap();
    std::fs::write(dir.join("b.pem"), "new").unwrap();
    let e = keys.verify_files(&["a.toml", "b.pem"]).unwrap_err();
    assert!(
        e.to_string().contains("b.pem") && e.to_string().contains("added"),
        "{e}"
    );
    assert_eq!(keys.store_key().unwrap().len(), 32);
    let gone = DeviceKeys::open(&dir).unwrap().destroy().unwrap();
    assert!(gone.iter().any(|g| g == STORE_KEY_FILE), "{gone:?}");
    assert!(DeviceKeys::open(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
