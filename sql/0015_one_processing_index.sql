-- 0015_one_processing_index.sql -- one partial index over processing jobs.
--
-- import_jobs had two: import_jobs_processing_idx (worker_id), for the
-- rescue sweep, and import_jobs_user_processing_idx (user_id, 0011), for
-- claim_job's fairness count. Both hold the same entries: one per
-- processing version of every job, which while a long transaction elsewhere
-- holds the xmin horizon back means every claim, lease fence and progress
-- write since. Both look a page or two big to the planner, so it took
-- either one for the fairness count: the churn study (RELIABILITY.md) logged
-- claims counting one user's processing jobs by scanning every user's in
-- import_jobs_processing_idx, 6,174 buffers a claim. No query looks jobs up
-- by worker_id; the rescue sweep reads every processing job and is served as
-- well by the other index. So it goes, and with it one index entry to write
-- for every processing version.

DROP INDEX importer.import_jobs_processing_idx;
