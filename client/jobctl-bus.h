/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Bus helpers for jobctl: replies read into GVariants whatever their signature, so that a newer
 * jobd adding keys or even types never trips a parser; typed lookups that treat a wrong type as
 * absent; job ids and paths.
 */

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

/* libsystemd ships the sd_bus_*_unrefp functions, not the macro that uses them */
#ifndef _cleanup_
#define _cleanup_(f) __attribute__((__cleanup__(f)))
#endif

/* The message a person should read for a failed call: the D-Bus error's, else strerror. */
const char *bus_error_message(const sd_bus_error *error, int r);

/* Reads the next complete value of m, of any type, into a new (non-floating) GVariant.
 * Handles (h) become GVariant handles holding the fd number; m keeps owning the fd. */
int bus_message_read_gvariant(sd_bus_message *m, GVariant **ret);
/* Reads a whole reply body as a tuple and checks it against type, e.g. "(a(tssso))";
 * -EBADMSG when the daemon answered something else. */
int bus_message_read_body(sd_bus_message *m, const char *type, GVariant **ret);

/* Properties.GetAll as an a{sv} GVariant: of jobd, or of another service (systemd). */
int bus_get_all_properties(sd_bus *bus, const char *path, const char *interface,
                           sd_bus_error *error, GVariant **ret);
int bus_get_all_properties_of(sd_bus *bus, const char *destination, const char *path,
                              const char *interface, sd_bus_error *error, GVariant **ret);

/* Typed a{sv} lookups: false (and *ret untouched) when the key is absent or of another type. */
bool vardict_get_str(GVariant *dict, const char *key, const char **ret);
bool vardict_get_u64(GVariant *dict, const char *key, uint64_t *ret);
bool vardict_get_u32(GVariant *dict, const char *key, uint32_t *ret);
bool vardict_get_i32(GVariant *dict, const char *key, int32_t *ret);
bool vardict_get_bool(GVariant *dict, const char *key, bool *ret);
/* as, or at as text; NULL when absent, of another type, or empty */
char *vardict_join(GVariant *dict, const char *key, const char *separator);

/* A value for people: strings as they are, numbers in decimal, booleans yes/no, arrays of
 * those joined with ", ", anything else in GVariant text format. */
char *variant_to_text(GVariant *v);

/* "42" → 42; ids start at 1. -EINVAL otherwise. */
int parse_job_id(const char *s, uint64_t *ret);
char *job_object_path(uint64_t id);

/* Blocks SIGINT and SIGTERM and watches them in the loop (a signalfd underneath): a long-running
 * verb ends cleanly on Ctrl-C or systemctl stop. */
int event_add_exit_signals(sd_event *event, sd_event_signal_handler_t handler, void *userdata);
