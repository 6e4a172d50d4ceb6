// Building blocks of the dashboards: Grafana's dashboard JSON (schemaVersion 39, Grafana 10/11)
// for the few panel kinds used, every query an InfluxQL raw query on the one provisioned data
// source. The dashboards themselves are the other files of this folder; `npm run dashboards`
// writes them to dashboards/json/.

// Typed against Grafana's own dashboard schema (@grafana/schema), so a misspelt or misplaced key
// fails the typecheck; panel options stay free-form there.
import {
  DashboardCursorSync,
  FieldColorModeId,
  MappingType,
  ThresholdsMode,
  VariableHide,
  VariableRefresh,
  VariableSort,
  type AnnotationQuery,
  type Dashboard,
  type DataQuery,
  type DataTransformerConfig,
  type FieldConfigSource,
  type Panel,
  type RowPanel,
  type VariableModel,
} from '@grafana/schema';

/** The data source dashboards/provisioning/datasources/influxdb.yaml provisions. */
export const DATASOURCE = { type: 'influxdb', uid: 'waste-influxql' } as const;

export type Json = Record<string, unknown>;

export interface Query {
  query: string;
  /** Series name; Grafana's $tag_<key> and $col patterns work here. */
  alias?: string;
  /** table: one row per point (maps, tables); time_series: graphs and stats. */
  format?: 'time_series' | 'table';
}

export interface PanelOptions {
  title: string;
  description?: string;
  queries: Query[];
  /** Width in grid columns (of 24) and height in rows. */
  w: number;
  h: number;
  unit?: string;
  decimals?: number;
  min?: number;
  max?: number;
  /** Ascending steps: the first without a value is the base colour. */
  thresholds?: [color: string, value?: number][];
  /** Panel-specific relative time, e.g. 'now/d' for today so far. */
  timeFrom?: string;
  /** Smallest GROUP BY time($__interval) step. */
  interval?: string;
  transformations?: DataTransformerConfig[];
  overrides?: FieldConfigSource['overrides'];
  links?: Json[];
  /** Value → text and colour, e.g. { true: ['writing', 'green'] }. */
  mappings?: Record<string, [text: string, color: string]>;
  options?: Json;
  custom?: Json;
}

function targets(queries: Query[]): Json[] {
  return queries.map((q, i) => ({
    refId: String.fromCharCode(65 + i),
    datasource: DATASOURCE,
    rawQuery: true,
    query: q.query,
    resultFormat: q.format ?? 'time_series',
    ...(q.alias ? { alias: q.alias } : {}),
  }));
}

function panel(type: string, o: PanelOptions, defaultOptions: Json): Panel {
  const steps = (o.thresholds ?? [['green']]).map(([color, value]) => ({ color, value: value ?? null }));
  return {
    type,
    title: o.title,
    ...(o.description ? { description: o.description } : {}),
    datasource: DATASOURCE,
    targets: targets(o.queries),
    gridPos: { w: o.w, h: o.h, x: 0, y: 0 },
    ...(o.timeFrom ? { timeFrom: o.timeFrom, hideTimeOverride: false } : {}),
    ...(o.interval ? { interval: o.interval } : {}),
    fieldConfig: {
      defaults: {
        ...(o.unit ? { unit: o.unit } : {}),
        ...(o.decimals !== undefined ? { decimals: o.decimals } : {}),
        ...(o.min !== undefined ? { min: o.min } : {}),
        ...(o.max !== undefined ? { max: o.max } : {}),
        thresholds: { mode: ThresholdsMode.Absolute, steps },
        color: { mode: o.thresholds ? FieldColorModeId.Thresholds : FieldColorModeId.PaletteClassic },
        ...(o.links ? { links: o.links } : {}),
        ...(o.mappings ? { mappings: [{ type: MappingType.ValueToText, options: Object.fromEntries(Object.entries(o.mappings).map(([value, [text, color]], index) => [value, { text, color, index }])) }] } : {}),
        ...(o.custom ? { custom: o.custom } : {}),
      },
      overrides: o.overrides ?? [],
    },
    options: { ...defaultOptions, ...o.options },
    transformations: o.transformations ?? [],
  };
}

const reduce = (calcs = ['lastNotNull']) => ({ reduceOptions: { calcs, fields: '', values: false } });

export const stat = (o: PanelOptions) => panel('stat', o, { ...reduce(), colorMode: 'value', graphMode: 'area', textMode: 'auto', justifyMode: 'auto' });

export const timeseries = (o: PanelOptions & { stacked?: boolean; bars?: boolean }) =>
  panel('timeseries', { ...o, custom: { drawStyle: o.bars ? 'bars' : 'line', fillOpacity: o.bars ? 80 : 10, lineWidth: 1, spanNulls: false, stacking: { mode: o.stacked ? 'normal' : 'none', group: 'A' }, ...o.custom } }, {
    legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull', 'max'] },
    tooltip: { mode: 'multi', sort: 'desc' },
  });

/** One bar per series (or per row with `rows`), its last value; sorted largest first. */
export const barGauge = (o: PanelOptions & { rows?: boolean }) =>
  panel('bargauge', o, { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: o.rows ?? false }, orientation: 'horizontal', displayMode: 'gradient', showUnfilled: true, minVizHeight: 16, maxVizHeight: 24 });

export const table = (o: PanelOptions & { sortBy?: { displayName: string; desc: boolean } }) =>
  panel('table', o, { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], fields: '' }, ...(o.sortBy ? { sortBy: [o.sortBy] } : {}) });

export const pie = (o: PanelOptions) => panel('piechart', o, { ...reduce(['sum']), pieType: 'donut', legend: { displayMode: 'table', placement: 'right', values: ['value', 'percent'] }, displayLabels: ['name'] });

/** A map centred on the city; each layer draws the rows of one query (lat and lon columns). */
export function geomap(o: PanelOptions & { layers: Json[]; view?: { lat: number; lon: number; zoom: number } }): Panel {
  return panel('geomap', o, {
    view: { id: 'coords', lat: o.view?.lat ?? 31.3, lon: o.view?.lon ?? 120.6, zoom: o.view?.zoom ?? 11 },
    controls: { showZoom: true, mouseWheelZoom: true, showAttribution: true },
    basemap: { type: 'default', name: 'Basemap' },
    layers: o.layers,
    tooltip: { mode: 'details' },
  });
}

/** A map layer drawing the rows of one query at their lat/lon columns. */
const layer = (type: string, name: string, refId: string, config: Json): Json => ({
  type,
  name,
  filterData: { id: 'byRefId', options: refId },
  location: { mode: 'coords', latitude: 'lat', longitude: 'lon' },
  tooltip: true,
  config,
});

/** Circles coloured by a field's thresholds (or one colour). */
export const markers = (name: string, refId: string, o: { colorField?: string; fixedColor?: string; size: number }) =>
  layer('markers', name, refId, {
    showLegend: true,
    style: {
      color: o.colorField ? { field: o.colorField, fixed: 'dark-green' } : { fixed: o.fixedColor ?? 'blue' },
      size: { fixed: o.size, min: 2, max: 15 },
      opacity: 0.8,
      symbol: { mode: 'fixed', fixed: 'img/icons/marker/circle.svg' },
    },
  });

/** Heat weighted by a field. */
export const heatmapLayer = (name: string, refId: string, weightField: string) => layer('heatmap', name, refId, { blur: 15, radius: 8, weight: { field: weightField, fixed: 1, min: 0, max: 1 } });

/** A row header, folding nothing: it names the panels under it. */
export const row = (title: string): RowPanel => ({ type: 'row', id: 0, title, collapsed: false, panels: [], gridPos: { w: 24, h: 1, x: 0, y: 0 } });

export interface Variable {
  name: string;
  label: string;
  /** SHOW TAG VALUES query listing the values. */
  query?: string;
  /** A free-text box with this default instead. */
  textbox?: string;
  description: string;
}

/** A template variable: several values or All (matched as the regex .*, so series without the tag stay in). */
function variable(v: Variable): VariableModel {
  if (v.textbox !== undefined) return { type: 'textbox', name: v.name, label: v.label, description: v.description, query: v.textbox, current: { text: v.textbox, value: v.textbox }, hide: VariableHide.dontHide };
  return {
    type: 'query',
    name: v.name,
    label: v.label,
    description: v.description,
    datasource: DATASOURCE,
    query: v.query,
    refresh: VariableRefresh.onTimeRangeChanged,
    multi: true,
    includeAll: true,
    allValue: '.*',
    current: { text: ['All'], value: ['$__all'] },
    sort: VariableSort.alphabeticalAsc,
    hide: VariableHide.dontHide,
  };
}

export const JURISDICTION: Variable = {
  name: 'jurisdiction',
  label: 'Jurisdiction',
  query: 'SHOW TAG VALUES FROM "alert" WITH KEY = "jurisdiction"',
  description: 'Enforcement jurisdictions (registry ids) alerts were routed to; "unassigned" is outside every jurisdiction.',
};
export const DISTRICT: Variable = { name: 'district', label: 'District', query: 'SHOW TAG VALUES FROM "bin_state" WITH KEY = "district"', description: 'Districts (registry ids).' };
export const COMPANY: Variable = { name: 'company', label: 'Company', query: 'SHOW TAG VALUES FROM "truck_state" WITH KEY = "company"', description: 'Haulage companies (registry ids) of the trucks.' };
export const API_URL: Variable = {
  name: 'api',
  label: 'API',
  textbox: 'http://localhost:8080',
  description: 'Base URL of the waste-telemetry API, for the links to an alert and its evidence (the API asks for a token).',
};

/** An InfluxQL annotation query as Grafana's InfluxDB data source stores it (raw query, columns named). */
interface InfluxAnnotationTarget extends DataQuery {
  query: string;
  rawQuery: true;
  fromAnnotations: true;
  textEditor: true;
  textColumn: string;
  titleColumn: string;
  tagsColumn: string;
}

/** Alert changes as annotations: raised, acknowledged and resolved (not evidence updates). */
function alertAnnotations(filters: string): AnnotationQuery<InfluxAnnotationTarget> {
  return {
    name: 'Alert changes',
    datasource: DATASOURCE,
    enable: true,
    hide: false,
    iconColor: 'red',
    target: {
      refId: 'Anno',
      query: `SELECT "change", "alert_id", "subject_id", "type", "jurisdiction" FROM "alert" WHERE $timeFilter AND "change" <> 'updated'${filters}`,
      rawQuery: true,
      fromAnnotations: true,
      textEditor: true,
      textColumn: 'subject_id',
      titleColumn: 'change',
      tagsColumn: 'type,jurisdiction',
    },
  };
}

/**
 * A dashboard: panels flow left to right in 24 columns, a row header starting a new line.
 * `annotationFilter` narrows the alert annotations to the dashboard's variables.
 */
export function dashboard(d: { uid: string; title: string; description: string; tags: string[]; from: string; refresh: string; variables: Variable[]; annotationFilter: string; panels: (Panel | RowPanel)[] }): Dashboard {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  const panels = d.panels.map((p, i) => {
    const grid = p.gridPos as { w: number; h: number };
    if (p.type === 'row' || x + grid.w > 24) {
      y += rowHeight;
      x = 0;
      rowHeight = 0;
    }
    const placed = { ...p, id: i + 1, gridPos: { ...grid, x, y } };
    x += grid.w;
    rowHeight = Math.max(rowHeight, grid.h);
    if (p.type === 'row') {
      y += grid.h;
      x = 0;
      rowHeight = 0;
    }
    return placed;
  });
  return {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: ['waste', ...d.tags],
    timezone: 'browser',
    editable: true,
    graphTooltip: DashboardCursorSync.Crosshair,
    schemaVersion: 39,
    version: 1,
    refresh: d.refresh,
    time: { from: d.from, to: 'now' },
    timepicker: {},
    fiscalYearStartMonth: 0,
    liveNow: false,
    weekStart: 'monday',
    templating: { list: d.variables.map(variable) },
    annotations: {
      list: [alertAnnotations(d.annotationFilter)],
    },
    links: [{ title: 'Waste dashboards', type: 'dashboards', tags: ['waste'], asDropdown: true, includeVars: true, keepTime: true, icon: 'external link', targetBlank: false, tooltip: '', url: '' }],
    panels,
  };
}
