package egressdoor

import (
	"sync"
	"testing"
	"time"
)

// TestDeadlineResetWhileFiring: a deadline moved while its timer is firing
// (Stop too late to stop the callback) must neither close its channel twice
// (a panic in a timer goroutine kills scoutd) nor leave the new deadline
// expired by the old one.
func TestDeadlineResetWhileFiring(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3000 {
				var d deadline
				d.init()
				d.set(time.Now().Add(20 * time.Microsecond))
				spin := time.Now().Add(20 * time.Microsecond)
				for time.Now().Before(spin) {
				}
				d.set(time.Now().Add(time.Hour))
				select {
				case <-d.wait():
					t.Error("a deadline an hour away has already passed")
					return
				default:
				}
				d.set(time.Now().Add(50 * time.Microsecond))
				select {
				case <-d.wait():
				case <-time.After(5 * time.Second):
					t.Error("a deadline 50µs away has not passed in 5s")
					return
				}
			}
		}()
	}
	wg.Wait()
}
