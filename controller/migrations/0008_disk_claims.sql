-- Unity Fleet: one host cannot take over another's disk (issue 9). A disk reported by a
-- second host while its own host still reports it stays where it is; the second host is
-- remembered here so the conflict is raised once, not every round. It moves only once its
-- host stops reporting it (marked absent).
ALTER TABLE disks ADD COLUMN contested_by uuid;
