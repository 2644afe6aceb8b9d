/* api_sql.c -- the gateway's SQL (see api_sql.h). */
#include "api_sql.h"

#define JOB_JSON                                                                                   \
	"json_build_object('id',j.id,'user_id',j.user_id,'kind',j.kind,'file_name',j.file_name,"   \
	"'file_size',j.file_size,'collection',j.collection,'import_mode',j.import_mode,"            \
	"'dry_run',j.dry_run,'status',j.status,'phase',j.phase,'progress',j.progress,"             \
	"'current_step',j.current_step,'eta_seconds',j.eta_seconds,'total_items',j.total_items,"   \
	"'total_is_estimate',j.total_is_estimate,'processed_items',j.processed_items,"             \
	"'failed_items',j.failed_items,'counts',j.counts,'error_message',j.error_message,"         \
	"'error_details',j.error_details,'attempts',j.attempts,'max_attempts',j.max_attempts,"     \
	"'cancel_requested',j.cancel_requested,'pause_requested',j.pause_requested,"               \
	"'created_at',j.created_at,'started_at',j.started_at,'completed_at',j.completed_at,"       \
	"'updated_at',j.updated_at)"

#define JOB_COLS JOB_JSON ", j.seq, j.status"

#define LOG_JSON                                                                                   \
	"json_build_object('id',l.id,'ts',l.ts,'level',l.level,'event',l.event,'message',l.message," \
	"'details',l.details)"

#define STREAM_LIMIT                                                                               \
	"(SELECT (s.value #>> '{}')::int FROM importer.settings s"                                 \
	" WHERE s.key = 'max_sse_streams_per_user' ORDER BY s.user_id NULLS LAST LIMIT 1)"

const char SQL_SUBMIT_BYTES[] = "SELECT set_config('importer.last_job',"
				" importer.submit_job($1::text, $3::bytea, $2::jsonb)::text, true)";
const char SQL_SUBMIT_UPLOAD[] = "SELECT set_config('importer.last_job',"
				 " importer.submit_job($1::text, $3::uuid, $2::jsonb)::text, true)";
const char SQL_JOB_LAST[] = "SELECT " JOB_COLS " FROM importer.import_jobs j"
			    " WHERE j.id = current_setting('importer.last_job')::uuid";
const char SQL_JOB_GET[] = "SELECT " JOB_COLS " FROM importer.import_jobs j WHERE j.id = $1::uuid";
const char SQL_JOB_LIST[] =
	"SELECT " JOB_COLS ", (extract(epoch FROM j.created_at) * 1000000)::bigint || '_' || j.id"
	" FROM importer.import_jobs j"
	" WHERE j.user_id = importer.current_user_id()"
	" AND ($1::text IS NULL OR j.status = $1::text)"
	" AND ($2::text IS NULL OR (j.created_at, j.id) <"
	" ('epoch'::timestamptz + split_part($2::text, '_', 1)::bigint * interval '1 microsecond',"
	" split_part($2::text, '_', 2)::uuid))"
	" ORDER BY j.created_at DESC, j.id DESC LIMIT $3::int";
const char SQL_JOB_CANCEL[] = "SELECT " JOB_COLS " FROM importer.cancel_job($1::uuid) j";
const char SQL_JOB_PAUSE[] = "SELECT " JOB_COLS " FROM importer.pause_job($1::uuid) j";
const char SQL_JOB_RESUME[] = "SELECT " JOB_COLS " FROM importer.resume_job($1::uuid) j";
const char SQL_JOB_RETRY[] = "SELECT " JOB_COLS " FROM importer.retry_job($1::uuid, $2::boolean) j";
const char SQL_JOB_DELETE[] = "SELECT importer.delete_job($1::uuid)";
const char SQL_JOB_CLEAR[] = "SELECT importer.clear_jobs($1::text)";
const char SQL_JOB_LOGS[] =
	"SELECT true, l.id, " LOG_JSON " FROM importer.import_jobs j"
	" LEFT JOIN LATERAL (SELECT * FROM importer.import_logs l WHERE l.job_id = j.id"
	" AND l.id > $2::bigint ORDER BY l.id LIMIT $3::int) l ON true WHERE j.id = $1::uuid"
	" ORDER BY l.id";
const char SQL_JOB_ERRORS[] =
	"SELECT true, e.id, json_build_object('record_index',e.record_index,'record_key',"
	"e.record_key,'collection',e.collection,'message',e.message)"
	" FROM importer.import_jobs j"
	" LEFT JOIN LATERAL (SELECT * FROM importer.import_errors e WHERE e.job_id = j.id"
	" AND e.id > $2::bigint ORDER BY e.id LIMIT $3::int) e ON true WHERE j.id = $1::uuid"
	" ORDER BY e.id";
const char SQL_RECORDS[] =
	"WITH c AS (SELECT convert_from(decode($2::text, 'hex'), 'UTF8')::json AS k)"
	" SELECT json_build_object('collection',r.collection,'record_key',r.record_key,'data',"
	"r.data,'job_id',(SELECT j.id FROM importer.import_jobs j WHERE j.id = r.job_id),"
	"'updated_at',r.updated_at),"
	" encode(convert_to(json_build_array(r.collection, r.record_key)::text, 'UTF8'), 'hex')"
	" FROM importer.records r LEFT JOIN c ON true"
	" WHERE r.user_id = importer.current_user_id()"
	" AND ($1::text IS NULL OR r.collection = $1::text)"
	" AND ($2::text IS NULL OR (r.collection, r.record_key) > (c.k->>0, c.k->>1))"
	" ORDER BY r.collection, r.record_key LIMIT $3::int";
const char SQL_STATS[] =
	"WITH s AS (SELECT j.kind, j.status, count(*) AS n FROM importer.import_jobs j"
	" WHERE j.created_at > now() - make_interval(hours => $1::int) GROUP BY 1, 2)"
	" SELECT json_build_object('hours', $1::int,"
	" 'by_kind', coalesce((SELECT json_agg(json_build_object('kind',kind,'status',status,"
	"'count',n) ORDER BY kind, status) FROM s), '[]'::json),"
	" 'success_rate', (SELECT round(sum(n) FILTER (WHERE status = 'completed')::numeric"
	" / nullif(sum(n) FILTER (WHERE status IN ('completed','failed','cancelled')), 0), 4)"
	" FROM s))";
const char SQL_UPLOAD_BEGIN[] = "SELECT importer.begin_upload($1::text)";
const char SQL_UPLOAD_CHUNK[] = "SELECT importer.append_chunk($1::uuid, $2::int, $3::bytea)";

const char SQL_SSE_JOB[] = "SELECT " JOB_COLS ", (SELECT max(l.id) FROM importer.import_logs l"
			   " WHERE l.job_id = j.id), " STREAM_LIMIT
			   " FROM importer.import_jobs j WHERE j.id = $1::uuid";
const char SQL_SSE_GLOBAL[] =
	"SELECT " JOB_COLS ", j.id::text, s.lim, s.logs_ok FROM (SELECT " STREAM_LIMIT " AS lim,"
	" ($1::uuid IS NULL OR EXISTS (SELECT 1 FROM importer.import_jobs x WHERE x.id = $1::uuid))"
	" AS logs_ok) s"
	" LEFT JOIN importer.import_jobs j ON j.user_id = importer.current_user_id() AND (j.status IN"
	" ('pending','processing','paused') OR j.id IN (SELECT x.id FROM importer.import_jobs x"
	" WHERE x.user_id = importer.current_user_id() ORDER BY x.created_at DESC LIMIT 20))"
	" ORDER BY j.created_at, j.id";
/* The two reads behind every live event: PL/pgSQL functions whose plans the
 * session keeps (sql/0012_sse_plan_caching.sql; same columns as JOB_COLS + the
 * id, and as LOG_JSON). */
const char SQL_SSE_JOBS[] = "SELECT job, seq, status, id FROM importer.sse_jobs($1::uuid[])";
const char SQL_SSE_LOGS[] = "SELECT id, line FROM importer.sse_logs($1::uuid, $2::bigint)";
