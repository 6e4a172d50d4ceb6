// /api/v1/devices/{id}/jt808/text: a text message to a truck's JT/T 808 terminal (0x8300), shown
// on its display and read aloud (docs/jt808.md "Downlink"). For dispatchers: admin and operator.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DeviceOfflineError, type TextDownlink } from '../../contract/downlink.ts';
import { UNSTORABLE } from '../../contract/payloads.ts';
import { ApiError } from '../errors.ts';

export const downlinkRoutes: FastifyPluginAsyncZod<{ downlink: TextDownlink | null }> = async (app, { downlink }) => {
  app.post('/devices/:id/jt808/text', {
    config: { roles: ['admin', 'operator'] },
    schema: {
      tags: ['devices'],
      summary: 'Send a text message to the driver (JT/T 808 0x8300)',
      params: z.object({ id: z.string() }),
      body: z.object({
        text: z.string().min(1).max(500).refine((text) => !UNSTORABLE.test(text), { error: 'must not contain control characters' }).describe('Shown on the terminal and read aloud; sent in GBK, at most 1,021 bytes'),
      }),
      response: { 200: z.object({ result: z.number().int().describe('The terminal\'s answer: 0 received, 1 failed, 2 message error, 3 not supported (JT/T 808-2013 table 5)') }) },
    },
  }, async (request) => {
    if (!downlink) throw new ApiError(409, 'conflict', 'this process runs no JT/T 808 gateway (jt808.port is 0, or it runs without the ingest role); send through a process that does');
    try {
      return { result: await downlink.sendText(request.params.id, request.body.text) };
    } catch (error) {
      if (error instanceof DeviceOfflineError) throw new ApiError(409, 'conflict', error.message);
      if (error instanceof RangeError) throw new ApiError(400, 'invalid_request', error.message, ['body', 'text']);
      // No answer in time: the terminal may be out of coverage.
      throw new ApiError(504, 'timeout', (error as Error).message);
    }
  });
};
