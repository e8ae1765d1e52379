package admin

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserEnv names the variable that makes a missing Chromium a failure
// instead of a skip; CI sets it after installing Chromium.
const browserEnv = "DEEPMETER_REQUIRE_BROWSER"

// newBrowser starts headless Chromium and returns a context that drives it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv(browserEnv) == "1" {
			t.Fatalf("chromium not found but %s=1: install Debian's chromium package", browserEnv)
		}
		t.Skipf("chromium not found; install Debian's chromium package or set %s=1 to fail instead", browserEnv)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// The dashboard signs in with a token, shows the totals and the records
// from the API, and shows a stored prompt full of HTML and script as plain
// text: nothing in it runs or becomes an element.
func TestDashboardShowsRecordsAsText(t *testing.T) {
	env := newTestEnv(t, nil)
	hostile := `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>`
	first := baseRecord("rec-1", testNow.Add(-time.Hour), mustMoney(t, "0.000756"))
	first.PromptTokens, first.CompletionTokens, first.TotalTokens = 1500, 800, 2300
	first.UserID, first.PageTab = "user-1", "search"
	second := baseRecord("rec-2", testNow.Add(-2*time.Hour), mustMoney(t, "0.0003276"))
	second.Message = hostile
	second.UserID, second.PageTab = `"><svg onload=alert(1)>`, "chat"
	second.RequestData = `{"messages":[{"role":"user","content":` + quoteJSON(hostile) + `}]}`
	unpriced := baseRecord("rec-3", testNow.Add(-3*time.Hour), 0)
	unpriced.Model, unpriced.Priced, unpriced.Currency = "mystery-model", false, ""
	unpriced.Flags = []string{"unpriced"}
	env.insert(t, first, second, unpriced)

	ctx := newBrowser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(env.srv.URL+"/"),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", testToken),
		chromedp.Click(`#signin-form button[type="submit"]`),
		chromedp.WaitVisible(`body[data-loaded="true"]`),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	totalCalls := pageText(t, ctx, "#total-calls")
	totalCost := pageText(t, ctx, "#total-cost")
	message := pageText(t, ctx, `#records tbody tr[data-id="rec-2"] td.message`)
	user := pageText(t, ctx, `#records tbody tr[data-id="rec-2"] td:nth-child(3)`)
	mysteryCost := pageText(t, ctx, `#models tbody tr:nth-child(2) td:nth-child(3)`)
	injected := pageEval[bool](t, ctx, `document.querySelector("#records img, #records script, #records svg, #records b") !== null`)

	if err := chromedp.Do(ctx, chromedp.Click(`#records tbody tr[data-id="rec-2"]`), chromedp.WaitVisible("#detail")); err != nil {
		t.Fatalf("open the record: %v", err)
	}
	detail := pageText(t, ctx, "#detail-request")
	pwned := pageEval[bool](t, ctx, `window.pwned !== undefined || document.querySelector("#detail img, #detail script") !== null`)

	checks := []struct{ name, got, want string }{
		{"total calls", totalCalls, "3"},
		{"unpriced model cost", mysteryCost, "0 USD + 1 unpriced"},
		{"total cost", totalCost, "0.0010836 USD"},
		{"hostile message cell", message, hostile},
		{"hostile user cell", user, `"><svg onload=alert(1)>`},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if !strings.Contains(detail, `<script>window.pwned=2</script>`) {
		t.Errorf("record detail does not show the request as text: %q", detail)
	}
	if injected || pwned {
		t.Errorf("stored markup became elements or ran: injected %v, ran %v", injected, pwned)
	}
}

// A wrong token leaves the user on the sign-in form with the API's error.
func TestDashboardRejectsWrongToken(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := newBrowser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(env.srv.URL+dashboardPath),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", "wrong-token-0123456789abcdef"),
		chromedp.Click(`#signin-form button[type="submit"]`),
		chromedp.WaitVisible("#error"),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	errorText := pageText(t, ctx, "#error")
	signinHidden := pageEval[bool](t, ctx, `document.getElementById("signin").hidden`)
	if !strings.Contains(errorText, "admin token") {
		t.Errorf("error %q does not mention the admin token", errorText)
	}
	if signinHidden {
		t.Error("sign-in form hidden after a rejected token")
	}
	// One wrong token is one failed check, so a couple of typos do not get
	// the address throttled.
	if n := authFailures(t, env.reg, "invalid"); n != 1 {
		t.Errorf("failed token checks after one wrong sign-in = %v, want 1", n)
	}
}

// The page and its assets are served without a token, with a content
// security policy that allows only the page's own scripts and API calls.
func TestDashboardHeaders(t *testing.T) {
	env := newTestEnv(t, nil)
	cases := []struct{ path, contentType string }{
		{dashboardPath, "text/html"},
		{dashboardPath + "app.js", "javascript"},
		{dashboardPath + "style.css", "text/css"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			resp, err := http.Get(env.srv.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); !strings.Contains(got, c.contentType) {
				t.Errorf("content type %q, want %q", got, c.contentType)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != dashboardPolicy {
				t.Errorf("content security policy %q", got)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
		})
	}
	resp, err := http.Get(env.srv.URL + dashboardPath + "missing.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing asset: status %d, want 404", resp.StatusCode)
	}
}

// pageText returns the visible text of the first element matching selector.
func pageText(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	text, err := chromedp.Run(ctx, chromedp.Text(selector))
	if err != nil {
		t.Fatalf("read %s: %v", selector, err)
	}
	return text
}

// pageEval evaluates a JavaScript expression in the page.
func pageEval[T any](t *testing.T, ctx context.Context, expression string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expression, err)
	}
	return v
}

func quoteJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
