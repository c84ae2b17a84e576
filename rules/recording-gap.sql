-- id: recording-gap
-- title: The recording is incomplete: lost events, unknown records, no clean stop
-- level: WARN
-- needs: -
SELECT NULL AS packet_id, NULL AS event_id, 'WARN' AS level, 'recording-gap' AS code,
       (SELECT lost_events FROM recording) || ' events were lost (the ring buffer was full) on CPU(s) '
           || (SELECT group_concat(cpu || ': ' || events, ', ') FROM lost WHERE events > 0)
           || ': packets around them may look incomplete or miss steps' AS message,
       'record with narrower filters (--addr, --port, --proto) or a bigger ring buffer, or less traffic; see skbtrail info' AS advice
WHERE (SELECT lost_events FROM recording) > 0
UNION ALL
SELECT NULL, NULL, 'INFO', 'unknown-records',
       (SELECT unknown_records FROM recording) || ' records of a type this skbtrail does not know were skipped (a newer recorder)',
       'update skbtrail to read them'
WHERE (SELECT unknown_records FROM recording) > 0
UNION ALL
SELECT NULL, NULL, 'INFO', 'recording-not-stopped',
       'the recording did not end cleanly (the recorder was killed or crashed): the last events may be missing',
       NULL
WHERE (SELECT ended_ns FROM recording) IS NULL
