package compile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goplt/goplt/internal/manifest"
)

// synthetic builds n modules in layers of 10: each depends on two modules of the layer below
// (diamonds everywhere), declares permissions, a role, routes and an event.
func synthetic(b *testing.B, n int) (map[string][]byte, string) {
	root := b.TempDir()
	_ = os.MkdirAll(filepath.Join(root, "schemas"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "schemas", "e.v1.json"), []byte(`{"type":"object"}`), 0o644)
	files := map[string][]byte{"manifests/platform.yaml": []byte(strings.Replace(platform, "  gateway: gateway\n", "", 1))}
	for i := range n {
		name := fmt.Sprintf("m%03d", i)
		var deps strings.Builder
		if i >= 10 {
			deps.WriteString("  dependsOn:\n")
			for _, d := range []int{i - 10, (i/10-1)*10 + (i+3)%10} {
				if d == i-10 && d == (i/10-1)*10+(i+3)%10 {
					continue
				}
				fmt.Fprintf(&deps, "    - {name: m%03d, version: \"^1\"}\n", d)
			}
		}
		doc := fmt.Sprintf(`apiVersion: goplt/v1
kind: Module
metadata: {name: %[1]s, version: 1.0.0}
spec:
  app: {id: %[1]s, build: ./apps/%[1]s}
%[2]s  permissions:
    - {name: %[1]s.item.read}
    - {name: %[1]s.item.write}
  roles:
    - {name: %[1]s.editor, permissions: [%[1]s.item.read, %[1]s.item.write]}
  routes:
    - {method: GET, path: "/api/%[1]s/items/{id}", permission: %[1]s.item.read}
    - {method: POST, path: /api/%[1]s/items, permission: %[1]s.item.write, audit: true}
  events:
    publishes:
      - {topic: %[1]s.item.created, schema: schemas/e.v1.json}
`, name, deps.String())
		files["manifests/"+name+".yaml"] = []byte(doc)
	}
	return files, root
}

func benchmarkValidateGenerate(b *testing.B, n int) {
	files, root := synthetic(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		set, err := manifest.Load(files, root)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Generate(set); err != nil {
			b.Fatal(err)
		}
	}
}

// Validate + generate for 20, 50, 100 and 200 modules: time per module should stay flat.
func BenchmarkValidateGenerate20(b *testing.B)  { benchmarkValidateGenerate(b, 20) }
func BenchmarkValidateGenerate50(b *testing.B)  { benchmarkValidateGenerate(b, 50) }
func BenchmarkValidateGenerate100(b *testing.B) { benchmarkValidateGenerate(b, 100) }
func BenchmarkValidateGenerate200(b *testing.B) { benchmarkValidateGenerate(b, 200) }
