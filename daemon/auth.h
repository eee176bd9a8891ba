/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who may see and change what. A job's Parameters, Result, Error, Outputs and Follow stream, and
 * Cancel, Retry and GetOutput, are for its owner, root, and administrators that polkit authorizes
 * for AUTH_ACTION_MANAGE; Reload, PauseType and ResumeType for root and those administrators.
 *
 * Decisions are synchronous, so handlers and property getters stay simple; the one asynchronous
 * step, asking polkit, happens before dispatch: a bus filter parks a protected call of anyone but
 * the owner or root until polkit's answer for its sender is known (polkit.h), then lets it through
 * again. In user mode there is no polkit: owner (everyone on the session bus) and root only.
 */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "manager.h"

#define AUTH_ACTION_MANAGE "org.jobd.Jobd1.manage"

int auth_setup(Manager *m);
void auth_teardown(Manager *m);

/* Whether the sender of call (the caller c) is root or authorized by polkit (an answer known). */
bool auth_is_admin(Manager *m, sd_bus_message *call, const Caller *c);
/* … or owns j. */
bool auth_may_manage(Manager *m, sd_bus_message *call, const Caller *c, const Job *j);

/* For property getters: whether the call being answered may see j's protected fields. */
bool auth_may_see(Manager *m, sd_bus *bus, const Job *j);

/* For handlers: 0 if the caller may manage j, else AccessDenied saying who may `what` it. */
int auth_check_job(Manager *m, sd_bus_message *call, const Job *j, const char *what, sd_bus_error *error);
/* 0 if the caller is root or a polkit-authorized administrator, else AccessDenied naming method. */
int auth_check_admin(Manager *m, sd_bus_message *call, sd_bus_error *error);
