package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Defaults and bounds of budgets.
const (
	DefaultBudgetWarnPercent     = 80
	DefaultBudgetHourlyRetention = 7 * 24 * time.Hour
	DefaultBudgetDailyRetention  = 90 * 24 * time.Hour
	// MinRollingBudget is the shortest rolling window: it is kept in 60
	// slices of at least one second each.
	MinRollingBudget = time.Minute
	// MaxRollingBudget is the longest rolling window (a year).
	MaxRollingBudget = 366 * 24 * time.Hour
	// maxBudgetAmount bounds an amount so that it fits int64 micro-units
	// exactly in Redis scripts (doubles: 2^53 micro-units).
	maxBudgetAmount = 1e9
)

// Budget windows (Budget.Window); anything else is a rolling window's
// length as a Go duration.
const (
	BudgetDay   = "day"
	BudgetMonth = "month"
)

// BudgetSettings are what every budget of limits.tenants shares.
type BudgetSettings struct {
	// TimeZone is the IANA zone (e.g. Europe/Paris) in which day and
	// month windows start at midnight; default UTC. Reloads live: windows
	// started under the old zone keep their spend, new requests count in
	// the window of the new zone.
	TimeZone string `yaml:"time_zone"`
	// WarnPercent is the share of a budget (1..100) whose crossing logs a
	// warning once per window and flags the request's usage event (default
	// 80; 100 warns only when the budget is spent).
	WarnPercent float64 `yaml:"warn_percent"`
	// HourlyRetention is how long the usage API's hourly series are kept
	// in the store (default 168h).
	HourlyRetention time.Duration `yaml:"hourly_retention"`
	// DailyRetention is how long its daily series are kept (default 2160h,
	// 90 days).
	DailyRetention time.Duration `yaml:"daily_retention"`
	// UsageTokenEnv names the environment variable holding the bearer
	// token of the usage API on the metrics listener (GET /usage); empty
	// leaves the API off. Read at start.
	UsageTokenEnv string `yaml:"usage_token_env"`
}

// Budget caps what a tenant or an API key spends in one window, in the
// currency of telemetry.prices (USD).
type Budget struct {
	// Window is day or month (calendar, in budget.time_zone), or the
	// length of a rolling window as a Go duration (1m to 8784h), e.g. 1h.
	Window string `yaml:"window"`
	// Amount is what may be spent in the window, e.g. 25.50.
	Amount float64 `yaml:"amount"`
}

// KeyBudgets are the budgets of one of the tenant's API keys (auth
// tenants[].api_keys[].name), on top of the tenant's own.
type KeyBudgets struct {
	// Name is the API key's name under auth.tenants[].api_keys.
	Name string `yaml:"name"`
	// Budgets are the key's budgets.
	Budgets []Budget `yaml:"budgets"`
}

// BudgetWindow is a parsed Budget.Window: Calendar is BudgetDay or
// BudgetMonth, else Rolling is the window's length.
type BudgetWindow struct {
	Calendar string
	Rolling  time.Duration
}

// String is the window as configured: day, month or a duration.
func (w BudgetWindow) String() string {
	if w.Calendar != "" {
		return w.Calendar
	}
	return w.Rolling.String()
}

// errBudgetWindow is what ParseBudgetWindow returns for anything else.
var errBudgetWindow = errors.New("a budget window is day, month or a duration from 1m to 8784h (e.g. 1h, 24h)")

// ParseBudgetWindow reads a Budget.Window.
func ParseBudgetWindow(s string) (BudgetWindow, error) {
	switch s {
	case BudgetDay, BudgetMonth:
		return BudgetWindow{Calendar: s}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinRollingBudget || d > MaxRollingBudget {
		return BudgetWindow{}, errBudgetWindow
	}
	return BudgetWindow{Rolling: d}, nil
}

// HasBudgets reports whether any tenant or API key has a budget.
func (l *Limits) HasBudgets() bool {
	if l == nil {
		return false
	}
	for _, t := range l.Tenants {
		if len(t.Budgets) > 0 || len(t.APIKeys) > 0 {
			return true
		}
	}
	return false
}

// Location is the zone of calendar windows (UTC when unset). Call it on
// a validated config only: an unknown zone is UTC.
func (b BudgetSettings) Location() *time.Location {
	if b.TimeZone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(b.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

func (b *BudgetSettings) applyDefaults() {
	if b.WarnPercent == 0 {
		b.WarnPercent = DefaultBudgetWarnPercent
	}
	if b.HourlyRetention == 0 {
		b.HourlyRetention = DefaultBudgetHourlyRetention
	}
	if b.DailyRetention == 0 {
		b.DailyRetention = DefaultBudgetDailyRetention
	}
}

// validateBudgets checks budget settings and every tenant's and key's
// budgets; keys must name the tenant's API keys under auth.
func (v *validator) validateBudgets(c *Config) {
	l := c.Limits
	b := l.Budget
	if b.TimeZone != "" {
		if _, err := time.LoadLocation(b.TimeZone); err != nil {
			v.at("$.limits.budget.time_zone", "time_zone %q is not a known IANA time zone (e.g. UTC, Europe/Paris)", b.TimeZone)
		}
	}
	if b.WarnPercent <= 0 || b.WarnPercent > 100 || math.IsNaN(b.WarnPercent) {
		v.at("$.limits.budget.warn_percent", "warn_percent must be above 0 and at most 100")
	}
	if b.HourlyRetention < time.Hour {
		v.at("$.limits.budget.hourly_retention", "hourly_retention must be at least 1h")
	}
	if b.DailyRetention < 24*time.Hour {
		v.at("$.limits.budget.daily_retention", "daily_retention must be at least 24h")
	}
	if b.UsageTokenEnv != "" && strings.ContainsAny(b.UsageTokenEnv, "= \t") {
		v.at("$.limits.budget.usage_token_env", "usage_token_env must name an environment variable")
	}
	for i, t := range l.Tenants {
		p := fmt.Sprintf("$.limits.tenants[%d]", i)
		v.budgetList(p+".budgets", t.Budgets)
		if len(t.APIKeys) == 0 {
			continue
		}
		keys := authKeys(c.Auth, t.Name)
		if keys == nil {
			v.at(p+".api_keys", "API key budgets of tenant %q need auth with that tenant and its named api_keys", t.Name)
		}
		seen := map[string]bool{}
		for j, k := range t.APIKeys {
			kp := fmt.Sprintf("%s.api_keys[%d]", p, j)
			if keys != nil && !keys[k.Name] {
				v.at(kp+".name", "tenant %q has no API key named %q under auth", t.Name, k.Name)
			}
			if seen[k.Name] {
				v.at(kp+".name", "API key %q is listed twice", k.Name)
			}
			seen[k.Name] = true
			v.budgetList(kp+".budgets", k.Budgets)
		}
	}
}

// budgetList checks one list of budgets: known windows, one budget per
// window, amounts in range.
func (v *validator) budgetList(p string, bs []Budget) {
	seen := map[string]bool{}
	for i, b := range bs {
		bp := fmt.Sprintf("%s[%d]", p, i)
		w, err := ParseBudgetWindow(b.Window)
		if err != nil {
			v.at(bp+".window", "window %q: %s", b.Window, err)
			continue
		}
		if seen[w.String()] {
			v.at(bp+".window", "two budgets have window %s", w)
		}
		seen[w.String()] = true
		if !(b.Amount > 0 && b.Amount <= maxBudgetAmount) {
			v.at(bp+".amount", "amount must be above 0 and at most %g", float64(maxBudgetAmount))
		}
	}
}

// authKeys returns the named API keys of tenant under auth, or nil when
// auth does not list the tenant.
func authKeys(a *Auth, tenant string) map[string]bool {
	if a == nil {
		return nil
	}
	for _, t := range a.Tenants {
		if t.Name != tenant {
			continue
		}
		keys := map[string]bool{}
		for _, k := range t.APIKeys {
			if k.Name != "" {
				keys[k.Name] = true
			}
		}
		return keys
	}
	return nil
}
