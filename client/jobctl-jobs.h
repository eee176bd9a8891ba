/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Verbs on jobs: submit, status, list, cancel. */

#include "jobctl.h"

extern const Verb jobs_verbs[];
