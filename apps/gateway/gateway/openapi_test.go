package gateway

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// platformDoc is the API document of the platform's compiled route table.
func platformDoc(t *testing.T) map[string]any {
	t.Helper()
	tb, err := LoadTable("../../../deploy/gateway/routes.json")
	if err != nil {
		t.Fatal(err)
	}
	return OpenAPI(tb, "http://127.0.0.1:8080")
}

func TestOpenAPICarriesTheContracts(t *testing.T) {
	doc := platformDoc(t)
	paths := doc["paths"].(map[string]map[string]any)
	for p, ops := range paths {
		for m, op := range ops {
			if op.(map[string]any)["summary"] == "" {
				t.Errorf("%s %s: no summary", m, p)
			}
		}
	}
	post := paths["/blog/posts"]["post"].(map[string]any)
	b, _ := json.Marshal(post)
	for _, want := range []string{`"$ref":"#/components/schemas/blog.post.input.v1"`, `"201":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/blog.post.v1"}}}`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("POST /blog/posts lacks %s: %s", want, b)
		}
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	if schemas["blog.post.input.v1"] == nil || schemas["identity.registration.v1"] == nil {
		t.Errorf("component schemas: %v", schemas)
	}
}

// redocly finds Redocly's CLI: GOPLT_REDOCLY (make test installs it and sets it), else
// redocly on PATH.
func redocly(t *testing.T) string {
	if p := os.Getenv("GOPLT_REDOCLY"); p != "" {
		return p
	}
	if p, err := exec.LookPath("redocly"); err == nil {
		return p
	}
	t.Skip("no Redocly CLI: set GOPLT_REDOCLY or run make deps-redocly (make test does)")
	return ""
}

type lintTotals struct {
	Errors, Warnings int
}

func lint(t *testing.T, cli string, doc map[string]any) (lintTotals, string) {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cli, "lint", "--extends", "recommended", "--format", "json", f)
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	out, _ := cmd.Output() // exits 1 when there are errors
	var res struct {
		Totals   lintTotals
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string
			Message  string
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("redocly's output is not its JSON report (%v): %s", err, out)
	}
	var summary bytes.Buffer
	for _, p := range res.Problems {
		summary.WriteString(p.Severity + " " + p.RuleID + ": " + p.Message + "\n")
	}
	return res.Totals, summary.String()
}

// The API document passes Redocly's recommended rules with no error; a document without a
// summary does not (so the lint can fail).
func TestOpenAPIPassesRedocly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Node.js")
	}
	cli := redocly(t)
	totals, problems := lint(t, cli, platformDoc(t))
	if totals.Errors != 0 {
		t.Errorf("redocly: %d errors, want 0:\n%s", totals.Errors, problems)
	}
	t.Logf("redocly recommended: %d errors, %d warnings\n%s", totals.Errors, totals.Warnings, problems)

	broken := platformDoc(t)
	delete(broken["paths"].(map[string]map[string]any)["/blog/posts"]["post"].(map[string]any), "summary")
	if totals, _ := lint(t, cli, broken); totals.Errors == 0 {
		t.Error("redocly found no error in a document with an operation without a summary")
	}
}
