/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Verbs that watch jobd: stats (people, --json, --prometheus) and top (jobctl-top.c). */

#include "jobctl.h"

extern const Verb stats_verbs[];

/* top, in jobctl-top.c */
int verb_top(Context *c, int argc, char *argv[]);

/* Manager.GetStats(type or "") as its a{sv}; logs on failure. */
int stats_call(Context *c, const char *type, GVariant **ret);
