// What the agent shows of itself: on its page, at GET /api/status, in its periodic log line and,
// from the queue file alone, with `--status`.
import type { ForwarderStatus } from '../forward/forwarder.ts';
import type { FrameStats } from '../formats/frame-reader.ts';
import type { DetectorState } from '../weighing/detector.ts';

export interface WeighingView {
  id: number;
  ts: string;
  kg: number;
  plate: string | null;
  /** When it expires unpaired. */
  expires_at: string;
}

export interface TicketView {
  ticket_id: string;
  ts: string;
  plate: string;
  gross_kg: number;
  tare_kg: number;
  net_kg: number;
}

export interface QueueView {
  waiting: number;
  oldest_at: string | null;
  /** The first waiting tickets; a row whose payload cannot be read shows its ticket id and why. */
  tickets: (TicketView | { ticket_id: string; problem: string })[];
  /** Tickets kept in the queue file and not sent, with why and what to do (forwarder.ts holdReason). */
  held: { ticket_id: string; reason: string }[];
  held_count: number;
}

/** A weighing or plate that could not be written to the queue file yet: kept in memory, retried. */
export interface UnsavedView {
  what: string;
  since: string;
}

export interface AgentStatus {
  device_id: string;
  /** What the operator must see first, and act on: the queue file, the clock, held tickets. */
  warnings: string[];
  format: string;
  input: { line: string; connected: boolean; problem: string | null; last_data_at: string | null; frames: FrameStats };
  weight: { kg: number; motion: boolean | null; at: string } | null;
  bridge: DetectorState;
  /** The plate of the truck on the bridge, and the plate waiting for the next truck. */
  plate_on_bridge: string | null;
  plate_waiting: { plate: string; until: string } | null;
  open_weighings: WeighingView[];
  expired: WeighingView[];
  queue: QueueView;
  storage: { file: string; problem: string | null; unsaved: UnsavedView[] };
  clock: { problem: string | null };
  broker: Omit<ForwarderStatus, 'held' | 'heldCount' | 'storageProblem'> & { url: string };
  /** over_capacity: indicator readings above stability.capacityKg, refused (a misread frame, the wrong --unit). */
  counts: { weighings: number; unsteady_passes: number; tickets: number; over_capacity: number };
}
