-- Unity Fleet: labels a host declares in its own config (`[host] labels`, issue 8), beside
-- the operator's. `host_labels` stays the effective set rollouts select by: an operator's
-- label (source 'api') wins over the host's own of the same key (source 'agent').
ALTER TABLE hosts ADD COLUMN agent_labels jsonb NOT NULL DEFAULT '{}';
ALTER TABLE host_labels ADD COLUMN source text NOT NULL DEFAULT 'api'
    CHECK (source IN ('api', 'agent'));
