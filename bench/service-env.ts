// The environment the benchmarks start the service with: its own data directory, the embedded
// broker on loopback without WebSocket, no API, no JT/T 808 gateway unless a port is given, the
// benchmark's InfluxDB, warnings only.
export function benchServiceEnv(dataDir: string, mqttPort: number, influxUrl: string, jt808Port = 0): Record<string, string> {
  return {
    WASTE_DATA_DIR: dataDir,
    WASTE_BROKER_HOST: '127.0.0.1',
    WASTE_BROKER_PORT: String(mqttPort),
    WASTE_BROKER_WS_PORT: '0',
    WASTE_API_PORT: '0',
    WASTE_JT808_PORT: String(jt808Port),
    WASTE_INFLUX_URL: influxUrl,
    WASTE_INFLUX_START_PRIVATE: 'false',
    WASTE_LOG_LEVEL: 'warn',
  };
}

/**
 * Node options the service runs with, as `npm start` and the Dockerfile give them: a 96 MiB
 * semi-space (V8's young generation is three of them; Node's default is 16 MiB), so that the
 * objects of a message in flight die young instead of being promoted (docs/alerts.md, "Speed").
 */
export const SERVICE_NODE_OPTIONS = ['--max-semi-space-size=96'];
