package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromium finds Debian's Chromium (make system-deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium on PATH: `make system-deps` installs Debian's chromium (apt-get install chromium)")
	return ""
}

// browse loads url in headless Chromium, lets its scripts run, and returns the DOM as the
// browser has it.
func browse(t *testing.T, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3000"}, extra...)
	if len(extra) == 0 {
		args = append(args, "--dump-dom")
	}
	// Headless Chromium now and then dies of a signal on a loaded machine (the whole platform
	// runs beside it); a crashed browser is not what this test checks, so it gets two more tries.
	for attempt := 1; ; attempt++ {
		out, err := exec.CommandContext(ctx, chromium(t), append(args, url)...).Output()
		var exit *exec.ExitError
		if err != nil && errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() && attempt < 3 && ctx.Err() == nil {
			t.Logf("chromium %s: %v; trying again", url, err)
			time.Sleep(time.Second)
			continue
		}
		if err != nil {
			t.Fatalf("chromium %s: %v", url, err)
		}
		return string(out)
	}
}

// text is what a person reads in the HTML: the tags' text, spaces squeezed.
func text(html string) string {
	html = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>`).ReplaceAllString(html, " ")
	return strings.Join(strings.Fields(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(html, " ")), " ")
}

// The developer dashboard in a real browser: the module graph's nodes, every app healthy, and
// a request through the gateway as a waterfall of its hops.
func TestDashboardInABrowser(t *testing.T) {
	needStack(t)
	if dashURL == "" {
		t.Skip("no dashboard while benchmarking")
	}
	// A request through the gateway: authenticated, so it visits authz too.
	u := register(t)
	r := do(t, "GET", "/billing/subscription", u.tok.AccessToken, nil)
	expect(t, r, http.StatusOK, "read the subscription")

	// Apps: a node per module, each healthy (the health poller runs every second).
	deadline := time.Now().Add(30 * time.Second)
	var page string
	for {
		page = browse(t, dashURL+"/")
		if !strings.Contains(text(page), "✘ down") && strings.Contains(page, `data-instance="gateway"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every app shows healthy:\n%s", text(page))
		}
		time.Sleep(time.Second)
	}
	for _, app := range allApps[:len(allApps)-1] { // the console sidecar is not a module
		if !regexp.MustCompile(`<g class="node healthy" data-app="` + app + `">`).MatchString(page) {
			t.Errorf("the graph has no healthy node for %s", app)
		}
	}
	if seen := text(page); !strings.Contains(seen, "gateway healthy ✔ healthy ✔ healthy") || !strings.Contains(seen, "notes#2") {
		t.Errorf("the instances table does not show the gateway healthy and both notes instances:\n%s", seen)
	}

	// Traces: the request appears, through the gateway's and billing's sidecars and authz's,
	// and with the apps' own spans: the gateway's root span named by its route, billing's
	// handler and its SQL (docs/telemetry.md). Each sidecar and app exports its spans in its
	// own batches, so wait for a waterfall with all of them.
	var wf, traceLink string
	appSpans := []string{"<b>gateway</b> GET /billing/subscription", "<b>billing</b> GET /billing/subscription", "<b>billing</b> SELECT"}
	hasAll := func(page string) bool {
		for _, service := range []string{"gateway", "authz", "billing"} {
			if !strings.Contains(page, `class="span" data-service="`+service+`"`) {
				return false
			}
		}
		for _, want := range appSpans {
			if !strings.Contains(page, want) {
				return false
			}
		}
		return true
	}
	for wf == "" {
		list := browse(t, dashURL+"/traces")
		for _, row := range regexp.MustCompile(`(?s)<tr>.*?</tr>`).FindAllString(list, -1) {
			if strings.Contains(row, "gateway") && strings.Contains(row, "billing") && strings.Contains(row, "authz") {
				link := regexp.MustCompile(`href="(/traces/[0-9a-f]+)"`).FindStringSubmatch(row)[1]
				if page := browse(t, dashURL+link); hasAll(page) {
					wf, traceLink = page, link
					break
				}
			}
		}
		if wf == "" && time.Now().After(deadline.Add(30*time.Second)) {
			t.Fatalf("no trace with spans of the gateway, authz and billing and %v:\n%s", appSpans, text(list))
		}
		if wf == "" {
			time.Sleep(time.Second)
		}
	}
	if !strings.Contains(wf, `class="bar" style="margin-left:`) {
		t.Error("the waterfall draws no bars")
	}

	// The registration's trace crosses the bus: identity's publish and billing's and audit's
	// handling of identity.user.created are in the trace the gateway started for POST /users.
	for {
		found, tried := false, 0
		list := browse(t, dashURL+"/traces")
		for _, row := range regexp.MustCompile(`(?s)<tr>.*?</tr>`).FindAllString(list, -1) {
			if !strings.Contains(row, "POST /users") || tried == 5 { // the newest five
				continue
			}
			tried++
			link := regexp.MustCompile(`href="(/traces/[0-9a-f]+)"`).FindStringSubmatch(row)[1]
			page := browse(t, dashURL+link)
			if strings.Contains(page, "<b>identity</b> publish identity.user.created") &&
				strings.Contains(page, "<b>billing</b> handle identity.user.created") && strings.Contains(page, "<b>audit</b> handle identity.user.created") {
				found = true
				break
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("no POST /users trace reaching billing's and audit's handling:\n%s", text(list))
		}
		time.Sleep(time.Second)
	}

	// Logs: the trace's page links to its log lines, which hold billing's access log line of
	// the request (billing logs at debug here), linked back to the trace; the filters work.
	traceID := strings.TrimPrefix(traceLink, "/traces/")
	if !strings.Contains(wf, `href="/logs?trace=`+traceID+`"`) {
		t.Error("the trace page does not link to its log lines")
	}
	for {
		logs := browse(t, dashURL+"/logs?trace="+traceID)
		row := regexp.MustCompile(`(?s)<tr class="log level-debug" data-app="billing">.*?</tr>`).FindString(logs)
		if strings.Contains(row, "request") && strings.Contains(row, "path=/billing/subscription") && strings.Contains(row, `href="/traces/`+traceID+`"`) {
			break
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("no log line of billing in trace %s:\n%s", traceID, text(logs))
		}
		time.Sleep(time.Second)
	}
	logs := browse(t, dashURL+"/logs?app=billing&level=info&q=listening")
	if !strings.Contains(logs, `data-app="billing"`) || strings.Contains(logs, `level-debug`) || strings.Contains(logs, `data-app="blog"`) {
		t.Errorf("/logs?app=billing&level=info&q=listening shows other apps, debug lines or nothing:\n%s", text(logs))
	}

	// Metrics: billing's route with the request just made, its events, and its sidecar's own
	// Dapr metrics. The apps export every 5 s: wait for them.
	for {
		page := browse(t, dashURL+"/metrics")
		section := regexp.MustCompile(`(?s)<section class="app-metrics" data-app="billing">.*?</section>`).FindString(page)
		if strings.Contains(section, "<td>GET /billing/subscription</td><td>") && strings.Contains(section, "goplt.outbox.backlog") &&
			strings.Contains(section, "dapr_http_server_request_count") {
			break
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("the metrics page shows no route, outbox and sidecar metrics for billing:\n%s", text(page))
		}
		time.Sleep(time.Second)
	}

	// The other pages render what they should.
	for path, want := range map[string]string{
		"/routes":    "GET /billing/subscription billing permission billing.subscription.read",
		"/topics":    "identity.user.deleted identity v2 audit, auth, billing, blog",
		"/audit":     "Chain: verifies",
		"/artifacts": "deploy/local/broker-acls.yaml explain",
	} {
		if got := text(get(t, dashURL+path)); !strings.Contains(got, want) {
			t.Errorf("%s does not show %q:\n%.2000s", path, want, got)
		}
	}

	// A screenshot for the docs, when asked: GOPLT_DASHBOARD_SCREENSHOT=docs/dashboard.png.
	if out := os.Getenv("GOPLT_DASHBOARD_SCREENSHOT"); out != "" {
		browse(t, dashURL+"/", "--window-size=1400,1000", "--screenshot="+out)
		browse(t, dashURL+traceLink, "--window-size=1400,700", "--screenshot="+strings.TrimSuffix(out, ".png")+"-trace.png")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
