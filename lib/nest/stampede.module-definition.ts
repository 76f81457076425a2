import { ConfigurableModuleBuilder } from '@nestjs/common';
import { StampedeModuleOptions } from './options/stampede.options';

export const {
  ConfigurableModuleClass: ConfigurableStampedeModule,
  MODULE_OPTIONS_TOKEN: STAMPEDE_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<StampedeModuleOptions>({ moduleName: 'Stampede' })
  .setClassMethodName('forRoot')
  // Global by default, as ThrottlerModule: `@UseInterceptors(StampedeInterceptor)`
  // then works in every feature module without importing this one again.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
