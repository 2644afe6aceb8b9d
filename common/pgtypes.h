/* pgtypes.h -- the few built-in type OIDs we pass to PQexecParams.
 *
 * libpq ships no header for them (server/catalog/pg_type_d.h is for backend
 * code); these are fixed since PostgreSQL 8 and part of the wire protocol.
 */
#ifndef IMPORTER_PGTYPES_H
#define IMPORTER_PGTYPES_H

#define TEXTOID      25
#define UUIDOID      2950
#define TEXTARRAYOID 1009

#endif
