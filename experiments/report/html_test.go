package report

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"faultline.dev/faultline/internal/testenv"
)

// TestHTMLInChromium opens the HTML report in headless Chromium: the page
// must log no error and throw nothing, and every chart must have drawn.
// It saves a PNG screenshot in the test's artifact directory (kept with
// go test -artifacts -outputdir DIR) and logs its path.
func TestHTMLInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Unavailable(t, "this test needs Chromium to render the report: apt-get install chromium (make deps-test does)")
	}
	dir := t.ArtifactDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, HTML, FromExperiment(partitioned())); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var svgs int
	if b, err := os.ReadFile(page); err == nil {
		svgs = strings.Count(string(b), `<svg class="chart"`)
	}
	// The page is self-contained: Chromium is kept from the network
	// altogether, so that a reference to anything outside would fail.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // as root, Chromium needs no sandbox or refuses to start
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.ProxyServer("127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		chromedp.WindowSize(1000, 800),
		// Its profile and the directory it makes in $TMPDIR go with the test.
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("TMPDIR="+t.TempDir()),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// The console is read until a last message of the test's own, so that
	// everything the page said before is in.
	const end = "faultline-report-test: end"
	messages := chromedp.Console(ctx)
	var problems []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				problems = append(problems, "console: "+err.Error())
				return
			}
			if m.Text == end {
				return
			}
			if m.IsException() || m.Type == "error" {
				problems = append(problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
			}
		}
	}()
	// The first run starts the browser and must have no deadline, which
	// would stop the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate("file://"+page), chromedp.WaitVisible(`body[data-charts]`)); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	charts, err := chromedp.Run(tctx, chromedp.AttributeValue(`body`, "data-charts"))
	if err != nil {
		t.Fatal(err)
	}
	expected, err := chromedp.Run(tctx, chromedp.AttributeValue(`body`, "data-charts-expected"))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[any](`console.info(`+strconv.Quote(end)+`)`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-tctx.Done():
		t.Fatal("the console's last message never came")
	}
	png := filepath.Join(dir, "report.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (page: %s)", png, page)
	for _, p := range problems {
		t.Errorf("the page said: %s", p)
	}
	// Timeline, traffic rate, errors and latency, NotReady, evictions and
	// fsync: every chart of the fixture.
	if n, _ := strconv.Atoi(charts.Value); n != 7 || expected.Value != strconv.Itoa(svgs) || n != svgs {
		t.Errorf("%s of %s charts drew (%d in the file), want all 7", charts.Value, expected.Value, svgs)
	}
}
