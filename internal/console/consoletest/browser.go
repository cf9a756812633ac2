package consoletest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/chromedp/chromedp"
)

// ErrNoBrowser: no chromium was found. Install Debian's chromium
// (apt-get install -y chromium), or set XBORDER_CHROMIUM to a Chrome or
// Chromium binary.
var ErrNoBrowser = errors.New("no chromium found: install it with 'apt-get install -y chromium' (Debian), or set XBORDER_CHROMIUM to a Chrome or Chromium binary")

// FindBrowser returns the path of the browser to drive: $XBORDER_CHROMIUM,
// else the first of chromium, chromium-browser, google-chrome on $PATH.
func FindBrowser() (string, error) {
	if p := os.Getenv("XBORDER_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBrowser
}

// Browser is a headless chromium; each Tab has its own cookies, so two
// tabs are two users.
type Browser struct {
	ctx    context.Context
	cancel func()
}

// NewBrowser starts a headless chromium, or returns an error wrapping
// ErrNoBrowser. Close stops it.
func NewBrowser(ctx context.Context) (*Browser, error) {
	path, err := FindBrowser()
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1200, 900), chromedp.Flag("disable-gpu", true))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		bcancel()
		acancel()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	return &Browser{ctx: bctx, cancel: func() { bcancel(); acancel() }}, nil
}

// Close stops the browser.
func (b *Browser) Close() { b.cancel() }

// Tab is one browser tab with its own cookies, at Base (the console's
// server URL, no trailing slash).
type Tab struct {
	Base   string
	ctx    context.Context
	cancel func()
}

// Tab opens a tab in a fresh browser context (no cookies).
func (b *Browser) Tab(base string) (*Tab, error) {
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("open tab: %w", err)
	}
	return &Tab{Base: base, ctx: ctx, cancel: cancel}, nil
}

// Close closes the tab.
func (t *Tab) Close() { t.cancel() }

// stepTimeout bounds each browser step.
const stepTimeout = 30 * time.Second

// Do runs steps, bounded by a deadline.
func (t *Tab) Do(steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(t.ctx, stepTimeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Text returns the text of the element sel (a CSS selector) once visible.
func (t *Tab) Text(sel string) (string, error) {
	ctx, cancel := context.WithTimeout(t.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		return "", fmt.Errorf("wait for %s: %w", sel, err)
	}
	return chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
}

// Open navigates to path (under Base) and waits for sel.
func (t *Tab) Open(path, sel string) error {
	return t.Do(chromedp.Navigate(t.Base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// SignIn signs in with an API token on the sign-in page, as a person
// would: type the token, press the button, and land on the role's first
// page (its menu visible).
func (t *Tab) SignIn(token string) error {
	return t.Do(chromedp.Navigate(t.Base+"/ui/signin"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("main button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("nav")))
}

// Fill sets the form fields (CSS selector to value) and submits with the
// button sel, then waits for the element after.
func (t *Tab) Fill(fields [][2]string, button, after string) error {
	var steps []chromedp.Action[chromedp.Void]
	for _, f := range fields {
		steps = append(steps, chromedp.SetValue(chromedp.CSS(f[0]), f[1]))
	}
	steps = append(steps, chromedp.Click(chromedp.CSS(button)), chromedp.WaitVisible(chromedp.CSS(after)))
	return t.Do(steps...)
}

// Screenshot returns a PNG of the whole page.
func (t *Tab) Screenshot() ([]byte, error) {
	ctx, cancel := context.WithTimeout(t.ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.FullScreenshot(100))
}

// Count returns how many elements match sel (a CSS selector) now.
func (t *Tab) Count(sel string) (int, error) {
	ctx, cancel := context.WithTimeout(t.ctx, stepTimeout)
	defer cancel()
	q, err := json.Marshal(sel)
	if err != nil {
		return 0, err
	}
	return chromedp.Run(ctx, chromedp.Evaluate[int]("document.querySelectorAll("+string(q)+").length"))
}
