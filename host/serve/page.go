package serve

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/executor"
)

//go:embed web
var web embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"ago":     ago,
	"until":   until,
	"short":   func(id string) string { return id[len(id)-8:] },
	"latency": latency,
	"code":    code,
}).ParseFS(web, "web/page.html"))

// pageData is what the status page shows.
type pageData struct {
	Identity  string
	Tenant    string
	Operator  bool
	Anonymous bool // --insecure-local without a token
	SignIn    bool // not signed in: show the sign-in form only
	Failed    bool // the last sign-in failed
	Now       time.Time
	Counts    []stateCount
	Pools     []poolView
	Breakers  []breakerView
	Approvals []approvalCard
	Recent    []*StepView
	Blocks    int
}

type stateCount struct {
	State string
	N     int
}

type poolView struct {
	Name                                   string
	Concurrency, InFlight, Queued, Backoff int
	Capacity                               int
	ByPriority                             []stateCount
}

type breakerView struct{ Dependency, State string }

type approvalCard struct {
	*StepView
	CanDecide bool
}

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	if e := s.guard(r); e != nil {
		writeError(w, e)
		return
	}
	setPageHeaders(w)
	d := pageData{Now: time.Now(), Failed: r.URL.Query().Get("login") == "failed"}
	p, e := s.authenticate(r)
	if e != nil {
		d.SignIn = true
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, r, &d)
		return
	}
	d.Identity, d.Tenant, d.Operator, d.Anonymous = p.identity, p.tenant, p.operator, p == local
	ctx := r.Context()
	tenant := p.tenant
	if p.operator {
		tenant = ""
	}
	counts, err := s.st.countByState(ctx, tenant)
	if err != nil {
		writeError(w, errInternal(err))
		return
	}
	for _, st := range []string{stateQueued, stateRunning, stateWaiting, "success", "error", "timeout", "cancelled"} {
		d.Counts = append(d.Counts, stateCount{st, counts[st]})
	}
	pending, err := s.st.pendingApprovals(ctx, tenant, 50)
	if err != nil {
		writeError(w, errInternal(err))
		return
	}
	for _, row := range pending {
		d.Approvals = append(d.Approvals, approvalCard{StepView: row.view(),
			CanDecide: row.Tenant == p.tenant && slices.Contains(row.Approval.Approvers, p.identity)})
	}
	recent, err := s.st.list(ctx, filter{Tenant: tenant, Limit: 25})
	if err != nil {
		writeError(w, errInternal(err))
		return
	}
	for _, row := range recent {
		d.Recent = append(d.Recent, row.view())
	}
	d.Blocks = len(s.cat)
	if p.operator {
		d.Pools = s.poolViews()
		d.Breakers = s.breakerViews()
	}
	s.render(w, r, &d)
}

func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

// render writes the page, or only its live part when the page's script
// asks for it (?part=live) to refresh itself.
func (s *Server) render(w http.ResponseWriter, r *http.Request, d *pageData) {
	name := "page.html"
	if r.URL.Query().Get("part") == "live" {
		name = "live"
	}
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, name, d); err != nil {
		s.logger.Error("rendering the status page", "error", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) poolViews() []poolView {
	var out []poolView
	for _, name := range s.exec.Pools() {
		st, ok := s.exec.Stats(name)
		if !ok {
			continue
		}
		pv := poolView{Name: name, Concurrency: st.Concurrency, InFlight: st.InFlight, Queued: st.Queued, Backoff: st.Backoff, Capacity: st.Capacity}
		for _, pr := range []executor.Priority{executor.PriorityCritical, executor.PriorityHigh, executor.PriorityNormal, executor.PriorityLow} {
			pv.ByPriority = append(pv.ByPriority, stateCount{pr.String(), st.QueuedByPriority[pr]})
		}
		out = append(out, pv)
	}
	return out
}

// breakerViews reads the circuit breakers' states from the executor's
// metrics, the one place the executor publishes them.
func (s *Server) breakerViews() []breakerView {
	mfs, err := s.registry.Gather()
	if err != nil {
		return nil
	}
	var out []breakerView
	for _, mf := range mfs {
		if mf.GetName() != "blockhost_executor_breaker_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetGauge().GetValue() != 1 {
				continue
			}
			out = append(out, breakerView{Dependency: label(m, "dependency"), State: label(m, "state")})
		}
	}
	slices.SortFunc(out, func(a, b breakerView) int { return strings.Compare(a.Dependency, b.Dependency) })
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := web.ReadFile("web/" + name)
	if err != nil || name == "page.html" {
		http.NotFound(w, r)
		return
	}
	ct := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}[path.Ext(name)]
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < 2*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2 Jan 15:04")
}

func until(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	switch {
	case d <= 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("in %ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("in %dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("in %dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return "on " + t.Format("2 Jan 15:04")
}

func latency(res *abi.StepResult) string {
	if res == nil {
		return "–"
	}
	switch ms := res.LatencyMS; {
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 10_000:
		return fmt.Sprintf("%.0f ms", ms)
	case ms < 120_000:
		return fmt.Sprintf("%.1f s", ms/1000)
	default:
		return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
	}
}

func code(res *abi.StepResult) string {
	if res == nil || res.Error == nil {
		return ""
	}
	return res.Error.Code.Name()
}
