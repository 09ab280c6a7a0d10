//! The text form of every fixture after import, kept by insta under snapshots/smelt-onnx/.
//! A change in the importer or the printer shows up as a reviewed snapshot diff.

mod common;

#[test]
fn fixture_text_forms() {
    for (name, path, _) in common::fixture_models() {
        let m = smelt_onnx::load_model(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = m.to_text();
        // The text parses back to the same text (constants from a blob store).
        let blobs = smelt_ir::text::BlobStore::from_graph(&m.graph);
        let parsed = smelt_ir::Model::from_text(&text, &blobs)
            .unwrap_or_else(|e| panic!("{name}: {}", e.render(&text)));
        assert_eq!(parsed.to_text(), text, "{name}: text does not round-trip");
        insta::with_settings!({
            snapshot_path => common::root().join("snapshots/smelt-onnx"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(format!("import_{name}"), text);
        });
    }
}

#[test]
fn typed_ops_of_the_fixtures_never_import_as_opaque() {
    for (name, path, _) in common::fixture_models() {
        let m = smelt_onnx::load_model(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let stats = smelt::stats::model_stats(&m);
        assert!(
            stats.opaque_ops.is_empty(),
            "{name}: {:?} imported as opaque",
            stats.opaque_ops
        );
    }
}
