//! `tokm verify` finds a flipped byte in a sealed segment, names file and offset, exits 1,
//! and leaves the damaged file as it was.
mod common;

const HEADER_LEN_BYTES: usize = 120;

#[test]
fn verify_names_file_and_offset_of_a_flipped_byte_in_a_sealed_segment() {
    let data = common::build(&[3, 2], &[]);
    let sealed = data.segments()[0].clone();
    // Inside the first record's payload, after its 20-byte frame header.
    common::flip_byte(&data.wal_dir().join(&sealed), HEADER_LEN_BYTES + 30);
    let before = common::tree(data.path());

    let output = common::tokm(&["verify", data.path().to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);
    assert_eq!(report["ok"], false);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0]["file"], format!("wal/{sealed}"));
    assert_eq!(damaged[0]["offset"], HEADER_LEN_BYTES);
    assert!(common::stderr(&output).contains("TM-CLI-5201"));
    assert_eq!(
        common::tree(data.path()),
        before,
        "verify changed the directory"
    );
}
