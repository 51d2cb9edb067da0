// The documented `--json` output shapes that are not simply a procedure's result (those are
// documented as the procedure's result type). Contract: scripts parse these; docs/cli.md lists them.
import { Type } from '@sinclair/typebox';
import { DomainRow, LifecycleEvent } from '../protocol/index.js';

/** `virtq list --json`: an array of listing rows (contract: at least name, uuid, state, persistent). */
export const ListOutput = Type.Array(DomainRow, { description: 'virtq list --json' });

/** `virtq event --json`: one JSON line per lifecycle event, each a LifecycleEvent. */
export const EventLine = LifecycleEvent;

/** `virtq admin log-filters --json`: the filters in force after the command. */
export const LogFiltersOutput = Type.Object({ filters: Type.String() }, { description: 'virtq admin log-filters --json' });

/** `virtq admin log-outputs --json`: the outputs in force after the command. */
export const LogOutputsOutput = Type.Object({ outputs: Type.String() }, { description: 'virtq admin log-outputs --json' });
