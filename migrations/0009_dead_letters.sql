-- Dead letters an operator can act on (`august dead-letters list | resolve | replay`).
--
-- content_hash  the refused content (the sink's cell hash; 'delete' for a refused delete), so
--               one (view, key, content) is dead-lettered once while it is open, and the sink
--               does not send it again after a restart.
-- resolution    how an operator closed it: 'resolved' (fixed by hand, or no longer wanted) or
--               'replayed' (sent again at the sink's next start).
-- Resolved letters, and open ones older than AUGUST_DEAD_LETTER_DAYS, are purged when the sink
-- starts.
ALTER TABLE sink_dead_letters
    ADD COLUMN content_hash text NOT NULL DEFAULT 'unknown',
    ADD COLUMN resolution   text CHECK (resolution IN ('resolved', 'replayed'));
UPDATE sink_dead_letters SET resolution = 'resolved' WHERE resolved_at IS NOT NULL;
-- Rows of older runs may repeat; keep the oldest open one of each before the index.
UPDATE sink_dead_letters d SET resolved_at = now(), resolution = 'resolved'
 WHERE resolved_at IS NULL
   AND EXISTS (SELECT 1 FROM sink_dead_letters o
                WHERE o.sink = d.sink AND o.view = d.view AND o.row_key = d.row_key
                  AND o.resolved_at IS NULL AND o.id < d.id);
ALTER TABLE sink_dead_letters
    ADD CONSTRAINT sink_dead_letters_resolved_how CHECK ((resolution IS NULL) = (resolved_at IS NULL));
CREATE UNIQUE INDEX sink_dead_letters_open_once
    ON sink_dead_letters (sink, view, row_key, content_hash) WHERE resolved_at IS NULL;
