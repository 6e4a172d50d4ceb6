// `npm run weighbridge -- --help`: key lines in Chinese and English, with real examples.
import { FORMAT_NAMES } from '../formats/index.ts';
import { WASTE_CATEGORIES } from '../../services/contract/payloads.ts';

export const HELP = `地磅代理程序 Weighbridge agent: reads the weight indicator (地磅仪表), pairs each truck's two
weighings into a ticket (磅单) and publishes it as scale device over MQTT, keeping every ticket in
a local queue until the broker has acknowledged it.

用法 Usage: npm run weighbridge -- [options]

仪表输入 Indicator input (one of 二选一):
  --serial PATH          串口 serial port, e.g. /dev/ttyUSB0
    --baud N             波特率 baud rate (9600)
    --data-bits 7|8      数据位 data bits (8)
    --parity none|even|odd  校验位 parity (none)
    --stop-bits 1|2      停止位 stop bits (1)
  --tcp HOST:PORT        串口服务器 serial-device server (e.g. USR-TCP232 in TCP server mode)
  --format NAME          仪表格式 indicator format: ${FORMAT_NAMES.join(' | ')} (xk3190-a9)
                         xk3190-a9 = 耀华 XK3190-A9 连续方式 tF=0; toledo = 托利多连续输出
  --unit kg|t            仪表显示单位 display unit (kg)

服务器 Broker:
  --mqtt-url URL         MQTT 服务器 broker (mqtt://127.0.0.1:1883)
  --device-id ID         地磅设备号 the scale device id (required 必填)
  --secret-file FILE     设备密钥文件 file holding the device secret, or set WEIGHBRIDGE_SECRET
                         (never on the command line 密钥不要写在命令行)

场地 Site:
  --direction in|out     进场 in (disposal site, plant) / 出场 out (construction site) (required 必填)
  --category NAME        垃圾类别 waste category: ${WASTE_CATEGORIES.join(' | ')} (required 必填)
  --origin ID            来源小区 community id on every ticket
  --ticket-prefix TEXT   磅单号前缀 ticket number prefix (the device id)

称重 Weighing:
  --stable-count N       连续稳定读数 readings in a row that must agree, 2-1000 (8)
  --tolerance-kg N       稳定允许波动 largest spread among them, kg (20)
  --min-kg N             最小称重 below this the bridge is empty, kg (500)
  --empty-count N        下磅读数 readings in a row below --min-kg before the truck is gone (3)
  --capacity-kg N        最大称量 readings above this are refused, kg, at most 100000 (100000)
  --new-truck-kg N       换车重量差 a new steady weight this far from the weighed one is the next
                         truck, kg (2000, or 10 x --tolerance-kg if more)
  --expire-after-h H     未配对称重过期 an unpaired weighing is dropped after H hours (12)
  --plate-window-s S     车牌等待时间 a plate given before the truck applies for S seconds (120)
  --min-pair-interval-s S  最短配对间隔 two weighings of a plate closer than S seconds are the
                         same truck weighed again, no ticket (120)
  --min-net-kg N         最小净重 two weighings of a plate closer than N kg are the same truck
                         weighed again, no ticket (100)

本机 Local:
  --queue-file FILE      队列文件 SQLite file of open weighings and unsent tickets (data/weighbridge.db)
  --page-host HOST       本地页面地址 page address (127.0.0.1; 0.0.0.0 for a camera on the LAN)
  --page-port PORT       本地页面端口 page port (8090)
  --no-page              不开页面 no page, no camera endpoint
  --camera-token-file F  摄像机令牌 camera pushes must carry this token (or WEIGHBRIDGE_CAMERA_TOKEN)
  --no-prompt            不在终端询问车牌 no plate prompt on the terminal
  --log-level LEVEL      日志级别 fatal|error|warn|info|debug (info)
  --config FILE          配置文件 JSON config file; options override it (docs/weighbridge.md)
  --status               查看队列 print the waiting tickets and open weighings of the queue file, and exit
  -h, --help             帮助 this help

例子 Examples:
  # 耀华 XK3190-A9 on a USB-serial adapter, a disposal site receiving construction waste
  WEIGHBRIDGE_SECRET=... npm run weighbridge -- --serial /dev/ttyUSB0 --baud 9600 \\
      --device-id WB-SZ-XC-01 --direction in --category construction \\
      --mqtt-url mqtt://telemetry.example.gov.cn:1883

  # 托利多 Toledo indicator behind a USR-TCP232 serial-device server at a construction site exit
  npm run weighbridge -- --tcp 192.168.1.7:8234 --format toledo --device-id WB-SITE-7 \\
      --secret-file /etc/weighbridge/secret --direction out --category construction

  # everything in a config file 全部写在配置文件
  npm run weighbridge -- --config /etc/weighbridge/agent.json

  # what is waiting to be sent 查看待发送磅单
  npm run weighbridge -- --status --queue-file /var/lib/weighbridge/queue.db

车牌 Plates: open http://127.0.0.1:8090/ (本地页面), type at the terminal prompt (终端输入), or let a
plate camera POST to /api/camera:
  curl -X POST http://127.0.0.1:8090/api/camera -H 'content-type: application/json' -d '{"plate":"苏E12345"}'
`;
