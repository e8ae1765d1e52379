package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/deepmeter/deepmeter/admin"
	"github.com/deepmeter/deepmeter/metering"
)

// loadAdminTokens reads --admin-tokens-file, or returns nil without one.
// A file that the group or others may read gets a warning, because
// anyone who reads it holds the tokens.
func loadAdminTokens(cfg *config, logger *slog.Logger) ([]admin.Token, error) {
	if cfg.AdminTokensFile == "" {
		return nil, nil
	}
	data, mode, err := readLimited(cfg.AdminTokensFile, admin.MaxTokensFileSize)
	if err != nil {
		return nil, fmt.Errorf("invalid --admin-tokens-file: %w", err)
	}
	tokens, err := admin.ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("invalid --admin-tokens-file %s: %w", cfg.AdminTokensFile, err)
	}
	if mode.Perm()&0o077 != 0 {
		logger.Warn("admin tokens file is readable by other users: run chmod 600 on it", "path", cfg.AdminTokensFile, "mode", mode.Perm().String())
	}
	logger.Info("loaded admin tokens", "path", cfg.AdminTokensFile, "tokens", len(tokens))
	return tokens, nil
}

// loadRedactRules reads --redact-file, or returns nil without one.
func loadRedactRules(cfg *config, logger *slog.Logger) ([]metering.RedactRule, error) {
	if cfg.RedactFile == "" {
		return nil, nil
	}
	data, _, err := readLimited(cfg.RedactFile, metering.MaxRedactFileSize)
	if err != nil {
		return nil, fmt.Errorf("invalid --redact-file: %w", err)
	}
	rules, err := metering.ParseRedactRules(data)
	if err != nil {
		return nil, fmt.Errorf("invalid --redact-file %s: %w", cfg.RedactFile, err)
	}
	logger.Info("loaded redaction rules", "path", cfg.RedactFile, "rules", len(rules))
	return rules, nil
}

// readLimited reads a file of at most limit bytes and returns its mode.
func readLimited(path string, limit int64) ([]byte, os.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, 0, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, info.Mode(), nil
}

// bodyStorage returns the metering mode of --store-bodies.
func bodyStorage(cfg *config) metering.BodyStorage {
	if cfg.StoreBodies == "none" {
		return metering.BodiesNone
	}
	return metering.BodiesStored
}
