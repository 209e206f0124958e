module github.com/bounded-systems/claude-box/keeperd

go 1.25.0
