/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Verbs a job or a worker calls about the attempt it holds: progress. */

#include "jobctl.h"

extern const Verb worker_verbs[];
