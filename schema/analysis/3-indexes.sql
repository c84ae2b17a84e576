-- Created after the bulk insert of a decode (faster than maintaining them row by row).
CREATE INDEX ev_packet ON ev (packet_id, step);
CREATE INDEX ev_probe_name ON ev (probe_name);
CREATE INDEX pkt_fate ON pkt (fate);
CREATE INDEX nat_event ON nat (event_id);
CREATE INDEX clone_parent ON clone_edge (parent_id);
