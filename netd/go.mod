module github.com/bounded-systems/claude-box/netd

go 1.25.0
