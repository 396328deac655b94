/*
 * server.h — kiln's HTTP server (libmicrohttpd): OpenAI-compatible routes, the jobs
 * API with SSE and WebSocket events, /health and /metrics.
 *
 * Every request that runs a model becomes a job of the engine; the server only
 * translates between HTTP and jobs. It never exits on bad input: each malformed or
 * hostile request gets a 4xx with an OpenAI-style JSON error body (or its connection
 * is cut), and the server keeps serving the others.
 */
#ifndef KILN_SERVER_SERVER_H
#define KILN_SERVER_SERVER_H

#include <stddef.h>

#include "engine/engine.h"
#include "kiln.h"

/* kiln_server, kiln_server_options and start/port/stop are declared in kiln.h. */

#endif
