-- The brokers query every few seconds which users are outside their access
-- window (plugin/windows.c). This index limits that query to the users
-- that have a window.
CREATE INDEX users_window_idx ON users (id)
	WHERE window_start IS NOT NULL;
