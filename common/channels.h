/* channels.h -- NOTIFY channel names shared by the schema, workers and gateway.
 *
 * The triggers in sql/ send on these channels; see DESIGN.md "NOTIFY". They are
 * fixed identifiers, safe to splice into LISTEN statements (never user input).
 */
#ifndef IMPORTER_CHANNELS_H
#define IMPORTER_CHANNELS_H

#define CHANNEL_JOBS          "importer_jobs"          /* work is ready; payload empty or a count */
#define CHANNEL_CONTROL       "importer_control"       /* cancel/pause requested; payload job id */
#define CHANNEL_EVENTS        "importer_events"        /* {"t","job_id","user_id","seq"} */
#define CHANNEL_NOTIFICATIONS "importer_notifications" /* an outbox row was written */

#endif
