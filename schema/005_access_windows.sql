-- The brokers ask every few seconds which users are outside their access
-- window (plugin/windows.c); this index keeps that query to the users that
-- have a window.
CREATE INDEX users_window_idx ON users (id)
	WHERE window_start IS NOT NULL;
