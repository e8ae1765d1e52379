package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deepmeter/deepmeter/admin"
	"github.com/deepmeter/deepmeter/metering"
	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/proxy"
	"github.com/deepmeter/deepmeter/spool"
	"github.com/deepmeter/deepmeter/store"
)

// writerFlushTimeout bounds how long shutdown waits for queued records to
// reach the database after the listeners have stopped.
const writerFlushTimeout = 30 * time.Second

// abortWait bounds how long shutdown waits, after the grace period, for
// cancelled calls to be recorded.
const abortWait = 5 * time.Second

func migrate(ctx context.Context, cfg *config, logger *slog.Logger) error {
	database := store.RedactURL(cfg.DatabaseURL)
	logger.Info("applying database migrations", "database", database)
	if err := store.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("migrate %s: %w", database, err)
	}
	logger.Info("database schema is up to date", "database", database)
	return nil
}

// migrateRetryMax caps the doubling wait between migration attempts while
// the database is unreachable.
const migrateRetryMax = 10 * time.Second

// startMigration applies the migrations and returns a channel that is
// closed once they succeeded. When the database cannot be reached, it logs
// a warning and retries in a goroutine that stop ends and waits for, so
// the proxy can start and spool records during an outage. Any other
// error, and every SQLite error, is returned.
func startMigration(ctx context.Context, cfg *config, logger *slog.Logger) (migrated <-chan struct{}, stop func(), err error) {
	done := make(chan struct{})
	// NOTE: a Postgres host that accepts no connection and sends no refusal
	// holds this first attempt until the operating system's connect timeout,
	// unless the URL sets connect_timeout.
	err = migrate(ctx, cfg, logger)
	if err == nil {
		close(done)
		return done, func() {}, nil
	}
	if !store.IsUnreachable(err) {
		return nil, nil, err
	}
	logger.Warn("database unreachable at start; starting anyway, spooling records and retrying the migration",
		"retry_in", time.Second, "error", err)

	retryCtx, cancel := context.WithCancel(context.Background())
	retryDone := make(chan struct{})
	go func() {
		defer close(retryDone)
		retryMigration(retryCtx, cfg, logger, done)
	}()
	stop = func() {
		cancel()
		<-retryDone
	}
	return done, stop, nil
}

// retryMigration retries migrate with a wait that starts at one second
// and doubles up to migrateRetryMax, until it succeeds, then closes
// migrated. It returns early when ctx ends.
func retryMigration(ctx context.Context, cfg *config, logger *slog.Logger, migrated chan<- struct{}) {
	wait := time.Second
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		err := migrate(ctx, cfg, logger)
		if err == nil {
			logger.Info("database reachable again; records go to the database and the spool is replayed")
			close(migrated)
			return
		}
		if ctx.Err() != nil {
			return
		}
		wait = min(2*wait, migrateRetryMax)
		if store.IsUnreachable(err) {
			logger.Warn("database still unreachable; retrying the migration", "retry_in", wait, "error", err)
		} else {
			logger.Error("migrating the database failed; retrying", "retry_in", wait, "error", err)
		}
	}
}

// loadPrices returns the price table that buildConfig loaded, or the
// built-in table.
func loadPrices(cfg *config, logger *slog.Logger) (*pricing.Table, error) {
	if cfg.Prices == nil {
		return pricing.Builtin(), nil
	}
	logger.Info("loaded price file", "path", cfg.PricesFile, "entries", len(cfg.Prices.Entries()))
	return cfg.Prices, nil
}

// openSpool opens cfg.SpoolDir and logs what an earlier process left in it.
func openSpool(cfg *config, logger *slog.Logger) (*spool.Spool, error) {
	sp, err := spool.Open(cfg.SpoolDir, spool.Options{
		MaxBytes: cfg.SpoolMaxBytes,
		Logger:   logger.With("component", "spool"),
	})
	if err != nil {
		return nil, fmt.Errorf("open --spool-dir %s: %w", cfg.SpoolDir, err)
	}
	if stats := sp.Stats(); stats.Entries > 0 {
		logger.Info("spool holds records from an earlier run; replaying them", "spool_dir", cfg.SpoolDir, "records", stats.Entries, "bytes", stats.Bytes)
	}
	return sp, nil
}

// serve runs the proxy and the admin API until ctx ends, then shuts down:
// readiness turns false, the listeners stop, in-flight calls get
// cfg.ShutdownGrace to finish, and queued records are written.
func serve(ctx context.Context, cfg *config, logger *slog.Logger) error {
	prices, err := loadPrices(cfg, logger)
	if err != nil {
		return err
	}
	roleTokens, err := loadAdminTokens(cfg, logger)
	if err != nil {
		return configError{err}
	}
	redactRules, err := loadRedactRules(cfg, logger)
	if err != nil {
		return configError{err}
	}
	migrated, stopMigration, err := startMigration(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stopMigration()
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("open %s: %w", store.RedactURL(cfg.DatabaseURL), err)
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sp, err := openSpool(cfg, logger)
	if err != nil {
		return err
	}
	// Closed after the writer, which spools what the database does not take.
	defer sp.Close()

	writer := metering.NewWriter(st, metering.WriterOptions{
		QueueSize:     cfg.QueueSize,
		FlushInterval: cfg.SpoolSync,
		Spool:         sp,
		SyncInterval:  cfg.SpoolSync,
		StoreReady:    migrated,
	}, logger.With("component", "writer"), reg)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		writer.Run(context.Background())
	}()
	meter := metering.NewMeter(prices, writer, logger.With("component", "metering"), reg, metering.Options{
		MaxStoredBody: cfg.storedBodyLimit(),
		Bodies:        bodyStorage(cfg),
		RedactRules:   redactRules,
	})

	px, err := proxy.New(proxy.Config{
		Upstream:           cfg.Upstream,
		Meter:              meter,
		MaxRequestBody:     cfg.MaxRequestBody,
		Logger:             logger.With("component", "proxy"),
		IdleTimeout:        cfg.UpstreamIdleTimeout,
		DrainOnClientAbort: cfg.DrainOnClientAbort,
	})
	if err != nil {
		return err
	}

	// admin.New logs how to set a token when there is none.
	var tokens []string
	if cfg.AdminToken != "" {
		tokens = []string{cfg.AdminToken}
	}
	var stopping atomic.Bool
	adminHandler, err := admin.New(admin.Config{
		Store:      st,
		Tokens:     tokens,
		RoleTokens: roleTokens,
		CORSOrigin: cfg.AdminCORSOrigin,
		DailyLimit: cfg.DailyLimit,
		Currency:   "USD",
		Gatherer:   reg,
		Registerer: reg,
		Logger:     logger.With("component", "admin"),
		// Records wait in the spool while the database is down, so the
		// proxy stays ready as long as the spool works.
		DatabaseOptional: true,
		Ready: func(context.Context) error {
			if stopping.Load() {
				return errors.New("shutting down")
			}
			if err := writer.SpoolErr(); err != nil {
				return fmt.Errorf("spool failing: %w", err)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}

	// Listen before serving, so a taken port fails the start at once.
	proxyListener, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on --listen %s: %w", cfg.Listen, err)
	}
	adminListener, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		proxyListener.Close()
		return fmt.Errorf("listen on --admin-listen %s: %w", cfg.AdminListen, err)
	}

	inflight := &sync.WaitGroup{}
	proxyServer := &http.Server{
		Handler:           trackInflight(inflight, px),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.ClientIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "proxy").Handler(), slog.LevelDebug),
	}
	adminServer := &http.Server{
		Handler:           adminHandler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "admin").Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- serveMaybeTLS(proxyServer, proxyListener, cfg.ProxyTLS) }()
	go func() { serveErr <- serveMaybeTLS(adminServer, adminListener, cfg.AdminTLS) }()
	logger.Info("deepmeter started",
		"version", versionString(),
		"listen", proxyListener.Addr().String(),
		"admin_listen", adminListener.Addr().String(),
		"upstream", cfg.Upstream.String(),
		"tls", cfg.ProxyTLS != nil,
		"admin_tls", cfg.AdminTLS != nil,
		"database", store.RedactURL(cfg.DatabaseURL),
		"spool_dir", cfg.SpoolDir)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "grace", cfg.ShutdownGrace)
	case err := <-serveErr:
		runErr = fmt.Errorf("server stopped: %w", err)
		logger.Error("server stopped, shutting down", "error", err)
	}
	stopping.Store(true)

	graceCtx, cancelGrace := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	if err := proxyServer.Shutdown(graceCtx); err != nil {
		// Calls still open after the grace period are cancelled, and
		// their handlers record them as cut by the shutdown.
		logger.Warn("in-flight calls did not finish within the grace period; cancelling them", "error", err)
		px.CloseCalls()
		proxyServer.Close()
	}
	cancelGrace()
	waitTimeout(inflight, abortWait)

	adminCtx, cancelAdmin := context.WithTimeout(context.Background(), 5*time.Second)
	if err := adminServer.Shutdown(adminCtx); err != nil {
		adminServer.Close()
	}
	cancelAdmin()

	flushCtx, cancelFlush := context.WithTimeout(context.Background(), writerFlushTimeout)
	defer cancelFlush()
	if err := writer.Close(flushCtx); err != nil {
		logger.Error("queued records were not written before exit", "error", err)
		runErr = errors.Join(runErr, err)
	}
	<-writerDone
	logger.Info("deepmeter stopped")
	return runErr
}

// serveMaybeTLS serves plain HTTP, or HTTPS with HTTP/2 when cert is set.
func serveMaybeTLS(srv *http.Server, l net.Listener, cert *tls.Certificate) error {
	if cert == nil {
		return srv.Serve(l)
	}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	return srv.ServeTLS(l, "", "")
}

// trackInflight counts running handlers in wg, so shutdown can wait for
// cancelled calls to write their records.
func trackInflight(wg *sync.WaitGroup, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		next.ServeHTTP(w, r)
	})
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
