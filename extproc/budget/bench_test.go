package budget

import (
	"context"
	"testing"
	"time"
)

// BenchmarkReserve is one admission's budget call (tenant day + month
// windows) and, in Settle, the call that settles it at the end.
func BenchmarkReserve(b *testing.B) {
	stores := map[string]func(b *testing.B) Store{
		"memory": func(*testing.B) Store { return NewMemoryStore(nil) },
		"redis":  func(b *testing.B) Store { return newTestRedisStore(b, "STREAMGATE_TEST_REDIS", false) },
	}
	for _, name := range []string{"memory", "redis"} {
		b.Run(name+"/reserve", func(b *testing.B) {
			clk := &testNow{t: time.Now()}
			bs := New(limitsOf(&testing.T{}, `tenants: [{name: acme, budgets: [{window: day, amount: 1e9}, {window: month, amount: 1e9}]}]`),
				Options{Store: stores[name](b), Now: clk.now})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bs.Reserve(ctx, Request{Tenant: "acme", Cost: 1000}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/reserve+settle", func(b *testing.B) {
			clk := &testNow{t: time.Now()}
			bs := New(limitsOf(&testing.T{}, `tenants: [{name: acme, budgets: [{window: day, amount: 1e9}, {window: month, amount: 1e9}]}]`),
				Options{Store: stores[name](b), Now: clk.now})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				r, err := bs.Reserve(ctx, Request{Tenant: "acme", Cost: 1000})
				if err != nil {
					b.Fatal(err)
				}
				r.Settle(Spend{Model: "m", Cost: 400, Input: 10, Output: 10})
			}
		})
	}
}
