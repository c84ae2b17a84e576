-- Created after the bulk insert of a decode (faster than maintaining them row by row).
CREATE INDEX nat_event ON nat (event_id);
CREATE INDEX clone_parent ON clone_edge (parent_id);
CREATE INDEX tcp_pkt_flow ON tcp_pkt (sport, dport, saddr, daddr);
CREATE INDEX counter_sample_name ON counter_sample (netns, kind, name, phase);
