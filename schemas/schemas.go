// Package schemas holds the JSON Schemas of goplt's manifests (module.yaml, platform.yaml).
// Editors use the files directly; the manifest loader validates against the embedded copies.
package schemas

import "embed"

// FS holds module.schema.json and platform.schema.json.
//
//go:embed *.schema.json
var FS embed.FS
