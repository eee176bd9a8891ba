/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Verbs for a job as it runs and after: run, follow, output. */

#include "jobctl.h"

extern const Verb run_verbs[];
